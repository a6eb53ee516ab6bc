#!/usr/bin/env bash
# One prepared GPU sitting for issue 12 item 6, for a session whose task is lent a GPU (about 6-8 minutes on an
# H200; the device tool gives ~15 minutes in all). Run from the repository root:
#
#   bash bench/gpu_sitting.sh                      # writes $OUT/*.jsonl (default ./bench-out), one JSON line each
#
# It times, at the published batch (500 BART / 300 T5): the train step fp32 eager, bf16 autocast, bf16 + compile;
# beam-5 generation fp32 and bf16 at batch 64; then bench/run_time.py (estimated hours of the 20-epoch run, MFU).
# Every command has its own timeout, so one failure or hang does not cost the rest; errors go to $OUT/errors.log.
# Overrides for a CPU smoke run: DEVICE=cpu BACKBONE=tiny-bart BATCH=4 GEN_BATCH=2 STEPS=1 bash bench/gpu_sitting.sh
set -u
OUT=${OUT:-bench-out}
DEVICE=${DEVICE:-cuda}
BACKBONE=${BACKBONE:-bart-base}
METHOD=${METHOD:-vl-pet-large}
BATCH=${BATCH:-500}
GEN_BATCH=${GEN_BATCH:-64}
STEPS=${STEPS:-5}
LIMIT=${LIMIT:-150}
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
: > "$OUT/errors.log"

run() {  # run NAME ARGS...: one bench, its JSON line appended to $OUT/NAME.jsonl
    local name=$1
    shift
    if ! timeout "$LIMIT" "$PY" "$@" >> "$OUT/$name.jsonl" 2>> "$OUT/errors.log"; then
        echo "FAILED ($name): $*" >> "$OUT/errors.log"
    fi
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  "$PY" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
} > "$OUT/machine.txt" 2>&1

common=(--device "$DEVICE" --backbone "$BACKBONE" --method "$METHOD")
run train bench/train_step.py "${common[@]}" --batch "$BATCH" --steps "$STEPS" --warmup 2
run train bench/train_step.py "${common[@]}" --batch "$BATCH" --steps "$STEPS" --warmup 2 --bf16
run train bench/train_step.py "${common[@]}" --batch "$BATCH" --steps "$STEPS" --warmup 2 --bf16 --compile
run generate bench/generate.py "${common[@]}" --batch "$GEN_BATCH" --steps "$STEPS" --warmup 1
run generate bench/generate.py "${common[@]}" --batch "$GEN_BATCH" --steps "$STEPS" --warmup 1 --bf16
run run_time bench/run_time.py "${common[@]}" --gen-batch "$GEN_BATCH" --steps 2 --warmup 1 \
    $([ "$DEVICE" = cpu ] && echo "--measure-batch $BATCH --fast onednn")
echo "done: $(ls "$OUT")" >&2
