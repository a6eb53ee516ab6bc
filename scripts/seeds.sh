#!/usr/bin/env bash
# Run a published launcher once per seed:
#   [SEEDS="42 43 9595"] [GPUS="0 1 2"] bash scripts/seeds.sh LAUNCHER ARGS... [flags...]
#   e.g. bash scripts/seeds.sh scripts/image-text/VL-PET-large.sh 20000 96 4 96 96 1e-3 42
# ARGS are the launcher's published positional arguments; its SEED argument (found by name in the launcher's usage
# line) is replaced by each seed of SEEDS (default: the paper's 42 43 9595). A launcher without one (full_finetuning,
# single_adapter: the official 9595) gets --seed S and its output folder suffixed with _seedS.
# Sequential by default; GPUS="0 1 2" runs one seed per GPU at once (CUDA_VISIBLE_DEVICES, master port PORT + slot).
# A seed whose run folder says finished is skipped; an unfinished one with a checkpoint continues (--resume); a
# failed seed is reported and the others go on. Each seed's output: LOGDIR (default snap/seeds)/<launcher>_seed<S>.log.
# Exit status: 0 when every seed finished, 1 when one failed, 130 when interrupted (Ctrl-C stops every seed, each
# keeping its checkpoint; the same command continues them).
set -uo pipefail
die() { echo "$1" >&2; exit 2; }
[ $# -ge 1 ] && [ -f "$1" ] || die "usage: $0 LAUNCHER ARGS... [flags...]  (LAUNCHER: a scripts/*/*.sh file)"
launcher=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
shift
cd "$(dirname "${BASH_SOURCE[0]}")/.."  # the launchers run from the repository root: run folders are relative to it
read -ra names <<< "$(sed -n 's/.*usage: \$0 \([A-Z_ ]*\).*/\1/p' "$launcher" | head -1)"
[ ${#names[@]} -gt 0 ] || die "error: $launcher has no 'usage: \$0 ARG...' line naming its positional arguments"
[ $# -ge ${#names[@]} ] || die "error: $(basename "$launcher") takes ${names[*]} [flags...]; got $# argument(s)"
seed_at=-1 port_at=-1
for i in "${!names[@]}"; do
    case ${names[$i]} in SEED) seed_at=$i ;; PORT) port_at=$i ;; esac
done
args=("$@")
read -ra seeds <<< "${SEEDS:-42 43 9595}"
read -ra gpus <<< "${GPUS:-}"
logdir=${LOGDIR:-snap/seeds}
mkdir -p "$logdir"
python=${PYTHON:-python}

seed_args() {  # seed_args SEED: the launcher's arguments for SEED, one a line
    local seed=$1 a=("${args[@]}")
    if [ $seed_at -ge 0 ]; then a[$seed_at]=$seed; printf '%s\n' "${a[@]}"; return; fi
    local out
    out=$(trainer_flag --output "${a[@]}") || return 1
    printf '%s\n' "${a[@]}" --seed "$seed" --output "${out}_seed$seed" --run_name "$(basename "$out")_seed$seed"
}

trainer_flag() {  # trainer_flag FLAG ARGS...: the value the launcher passes to the trainer for FLAG (the last one)
    local flag=$1 value="" prev="" line
    shift
    while IFS= read -r line; do
        [ "$prev" = "$flag" ] && value=$line
        prev=$line
    done < <(VLPET_PRINT_ARGS=1 bash "$launcher" "$@")
    [ -n "$value" ] || { echo "error: $(basename "$launcher") $* passes no $flag to the trainer" >&2; return 1; }
    printf '%s\n' "$value"
}

declare -A outcome pid_seed pid_slot
slots=("")  # one slot per GPU; one slot on the default device
[ ${#gpus[@]} -gt 0 ] && slots=("${gpus[@]}")
free=("${!slots[@]}")
interrupted=0
trap 'interrupted=1; for p in "${!pid_seed[@]}"; do kill -INT -- "-$p" 2>/dev/null; done' INT TERM
set -m  # each seed in its own process group: Ctrl-C reaches it through the trap, and stops its whole torchrun tree

start_seed() {  # start_seed SEED SLOT ARGS...
    local seed=$1 slot=$2 log="$logdir/$(basename "$launcher" .sh)_seed$seed.log"
    shift 2
    (
        [ ${#gpus[@]} -gt 0 ] && export CUDA_VISIBLE_DEVICES=${slots[$slot]}
        if [ ${#gpus[@]} -gt 1 ]; then
            base=29500
            [ $port_at -ge 0 ] && base=${args[$port_at]}
            export VLPET_PORT=$((base + slot))
        fi
        if [ ${#gpus[@]} -gt 1 ]; then exec bash "$launcher" "$@" >> "$log" 2>&1; fi
        bash "$launcher" "$@" 2>&1 | tee -ai "$log"
        exit "${PIPESTATUS[0]}"
    ) &
    pid_seed[$!]=$seed
    pid_slot[$!]=$slot
    echo "seed $seed: started${slots[$slot]:+ on GPU ${slots[$slot]}} (log $log)"
}

wait_one() {  # wait for one running seed; record its outcome and free its slot
    local pid rc
    while true; do
        wait -n -p pid "${!pid_seed[@]}"
        rc=$?
        [ -n "${pid:-}" ] && break  # a trapped signal interrupts wait without a finished job: wait again
    done
    if [ $rc -eq 0 ]; then
        outcome[${pid_seed[$pid]}]="finished"
    elif [ $rc -eq 130 ] || [ $interrupted -eq 1 ]; then
        outcome[${pid_seed[$pid]}]="interrupted (continue with the same command)"
    else
        outcome[${pid_seed[$pid]}]="FAILED (exit $rc; see the log)"
    fi
    echo "seed ${pid_seed[$pid]}: ${outcome[${pid_seed[$pid]}]}"
    free+=("${pid_slot[$pid]}")
    unset "pid_seed[$pid]" "pid_slot[$pid]"
}

for seed in "${seeds[@]}"; do
    [ $interrupted -eq 1 ] && break
    mapfile -t run_args < <(seed_args "$seed")
    run_dir=$(trainer_flag --output "${run_args[@]}") || { outcome[$seed]="FAILED (bad arguments)"; continue; }
    action=$("$python" -m vlpet.report.status "$run_dir") || { outcome[$seed]="FAILED (cannot read $run_dir)"; continue; }
    if [ "$action" = finished ]; then
        outcome[$seed]="finished already, skipped ($run_dir)"
        echo "seed $seed: ${outcome[$seed]}"
        continue
    fi
    [ "$action" = resume ] && run_args+=(--resume)
    while [ ${#free[@]} -eq 0 ]; do wait_one; done
    [ $interrupted -eq 1 ] && break
    slot=${free[0]}
    free=("${free[@]:1}")
    start_seed "$seed" "$slot" "${run_args[@]}"
done
while [ ${#pid_seed[@]} -gt 0 ]; do wait_one; done

status=0
echo "seeds of $(basename "$launcher"):"
for seed in "${seeds[@]}"; do
    echo "  $seed: ${outcome[$seed]:-not started (interrupted)}"
    case ${outcome[$seed]:-} in finished*) ;; interrupted*|"") status=130 ;; *) [ $status -eq 0 ] && status=1 ;; esac
done
exit $status
