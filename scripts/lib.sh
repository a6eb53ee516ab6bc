# Shared by the launchers: `python -m vlpet.train.launch` (the trainer itself, or torchrun for several processes) from
# the repo root (PYTHON=... picks the interpreter). NPROC=<n> overrides the number of processes (default: the
# script's, 1 as published); extra flags given after a script's positional arguments are passed on (e.g.
# --datasets_root /data --resume --bf16). VLPET_PORT=<p> overrides the master port; VLPET_PRINT_ARGS=1 prints the
# trainer flags, one a line, instead of running (both used by seeds.sh).
export TOKENIZERS_PARALLELISM=${TOKENIZERS_PARALLELISM:-false}  # forked loader workers + a used Rust pool can deadlock
export MALLOC_MMAP_MAX_=${MALLOC_MMAP_MAX_:-0} MALLOC_TRIM_THRESHOLD_=${MALLOC_TRIM_THRESHOLD_:-68719476736}
cd "$(dirname "${BASH_SOURCE[0]}")/.."

launch() {  # launch PORT NPROC FLAG...
    local port=${VLPET_PORT:-$1} nproc=$2
    shift 2
    if [ -n "${VLPET_PRINT_ARGS:-}" ]; then printf '%s\n' "$@"; return; fi
    # vlpet.train.launch: one process runs `python -m vlpet train` itself (no torchrun in between); several go
    # through torchrun with rank 0's exit code. Either way the exit code is the trainer's (docs/distributed.md).
    forward "${PYTHON:-python}" -m vlpet.train.launch "${NPROC:-$nproc}" "$port" "$@"
}

forward() {  # forward CMD...: run CMD, pass SIGTERM / SIGINT / SIGUSR1 on to it, return its exit code
    "$@" &
    local pid=$! rc=0
    trap 'kill -TERM '"$pid"' 2>/dev/null' TERM
    trap 'kill -INT '"$pid"' 2>/dev/null' INT
    trap 'kill -USR1 '"$pid"' 2>/dev/null' USR1
    while :; do
        wait "$pid" && rc=0 || rc=$?
        kill -0 "$pid" 2>/dev/null || break  # a trapped signal ends `wait` early: wait again until it exits
    done
    trap - TERM INT USR1
    return "$rc"
}

image_common() {  # image_common BACKBONE BATCH OUTPUT NAME LR EPOCHS
    echo --optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr "$5" --epochs "$6" --num_workers 4 \
        --backbone "$1" --output "$3" --num_beams 5 --batch_size "$2" --valid_batch_size "$2" \
        --tasks vqa,gqa,nlvr,caption --feature RN101 --n_boxes 36 --downsample --image_size "(224,224)" \
        --run_name "$4"
}

video_common() {  # video_common BACKBONE BATCH OUTPUT NAME LR EPOCHS  (src/multitask_video.py, scripts/video-text)
    echo --optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr "$5" --epochs "$6" --num_workers 4 \
        --backbone "$1" --output "$3" --num_beams 5 --batch_size "$2" --valid_batch_size "$2" --use_tasks_prompts \
        --tasks tvqa,how2qa,tvc,yc2c --feature ViT --n_boxes 64 --downsample --image_size "(224,224)" \
        --run_name "$4"
}

lst_image() {  # lst_image SCRIPT LR NAME "METHOD FLAGS" GPU NPROC EXTRA...  (Ladder-Side-Tuning VL-T5/scripts/image/)
    # As those scripts: CUDA_VISIBLE_DEVICES=GPU, port 26670 (MASTER_PORT=... overrides), t5-base, batch 300,
    # 20 epochs, and one run per seed 9595 9596 9597 (SEEDS="..." overrides), each in snap/VLT5_multitask/NAME@seed.
    local script=$1 lr=$2 stem=$3 method=$4 seed
    shift 4
    if [ $# -lt 2 ]; then echo "usage: $script GPU NPROC [flags...]" >&2; exit 2; fi
    local gpu=$1 nproc=$2
    shift 2
    for seed in ${SEEDS:-9595 9596 9597}; do
        CUDA_VISIBLE_DEVICES=$gpu launch "${MASTER_PORT:-26670}" "$nproc" \
            $(image_common t5-base 300 "snap/VLT5_multitask/${stem}@${seed}" "${stem}@${seed}" "$lr" 20) \
            $method --seed "$seed" "$@"
    done
}

peft_image() {  # peft_image CONFIG RUN_PREFIX PORT SEED [flags...]: DoRA's published VL-BART setting (batch 300,
    # lr 1e-3, 20 epochs, --unfreeze_bias --unfreeze_layer_norms) with the peft tuner of scripts/peft/CONFIG.json
    local config=$1 prefix=$2
    shift 2
    if [ $# -lt 2 ]; then echo "usage: $0 PORT SEED [flags...]" >&2; exit 2; fi
    local port=$1 seed=$2
    shift 2
    local name="${prefix}_lr1e-3_seed${seed}_bs300_image224"
    launch "$port" 1 $(image_common facebook/bart-base 300 "snap/VLBart_multitask/$name" "$name" 1e-3 20) \
        --use_tasks_prompts --peft_config "scripts/peft/$config.json" --unfreeze_bias --unfreeze_layer_norms \
        --seed "$seed" "$@"
}
