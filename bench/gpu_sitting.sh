#!/usr/bin/env bash
# The GPU sitting (issue 20 item 9): one script that fits 10 minutes on one H100, every command under its own time
# limit and all of them under one deadline (BUDGET seconds, default 540), so a hang or a failure costs its own step
# only and the sitting always ends in time. Run from the repository root:
#
#   bash bench/gpu_sitting.sh                  # GPU: writes $OUT (default ./bench-out)
#   MODE=cpu bash bench/gpu_sitting.sh         # the same steps on CPU with tiny models (a smoke run of the script)
#
# Steps, in priority order (a step starts only while enough of the budget is left):
#  0. preflight: versions (torch, CUDA, cuDNN, GPU, transformers); the carried wheels installed where the machine's
#     transformers differs from requirements.txt (below); a 10-second beam-5 smoke (tiny-bart generate(num_beams=5)),
#     which stops the sitting at once if it fails: nothing else would produce its figures then.
#  1. golden tests on the device (VLPET_TEST_DEVICE, TF32 off) and bench/golden_report.py's max deviations;
#  2. determinism: two identical backwards bitwise equal? (bench/determinism.py, plain and --deterministic);
#  3. trainer smoke on the device: synthetic data, tiny-bart bf16 with 4 workers, kill -9 mid-epoch, --resume,
#     final weights against an uninterrupted run (and with the trainer's --deterministic when it has that flag);
#  4. train steps at the published shapes (bench/train_step.py, GQA's batch: BART 833, T5 500; caption 416 with
#     40-token targets) in fp32 / TF32 / bf16 / bf16+compile, with max_memory_allocated;
#  5. torch.profiler summary of two bf16 steps: GPU busy time against wall time (bench/profile_step.py);
#  6. the loader against the step rate (bench/loader.py, packed and h5, 4/8 workers);
#  7. bench/run_time.py (hours of the 20-epoch run per path, MFU against the datasheet and measured peaks).
# Output: $OUT/machine.txt, $OUT/<step>.jsonl (one JSON line per measurement), $OUT/golden.txt (pytest's summary),
# $OUT/errors.log (stderr of every step and one FAILED/SKIPPED line per step that did not finish).
#
# The device machine has no internet. When its transformers is not the pinned one (requirements.txt; beam search
# needs >= 5.24 in this tree's generate), bring the wheel along: here, once,
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl transformers==5.24.0
# (add any other pinned package the machine lacks, one version each), carry `.whl` with the run, and this script
# installs them with `pip install --no-index --no-deps --target /tmp/vlpet-site .whl/*.whl` and puts that folder
# first on PYTHONPATH. Without .whl it runs the machine's own versions and says so in machine.txt.
set -u
MODE=${MODE:-gpu}
OUT=${OUT:-bench-out}
# CPU smoke runs: every limit × SCALE (a shared CPU is slow to start and tiny steps still take seconds)
if [ "$MODE" = cpu ]; then SCALE=${SCALE:-4}; BUDGET=${BUDGET:-3000}; else SCALE=${SCALE:-1}; BUDGET=${BUDGET:-540}; fi
PY=${PYTHON:-python3}
START=$(date +%s)
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
mkdir -p "$OUT"
: > "$OUT/errors.log"

if [ "$MODE" = cpu ]; then
    DEVICE=cpu; BART=tiny-bart; T5=tiny-t5; TINY=(--feat-dim 32 --threads 1); GQA_BART=8; GQA_T5=6; CAP=6
    STEPS=(--steps 1 --warmup 1); SMOKE=(--n-train 24 --feat-dim 32 --batch-size 6); GOLDEN_N=2
    LOADER=(--n-train 8 --feat-dim 8 --batch-size 12 --epochs 1 --workers 0 1)
    RUNTIME=(--measure-batch 2 --gen-batch 2 --fast onednn --steps 1 --warmup 0)
else
    DEVICE=cuda; BART=bart-base; T5=t5-base; TINY=(); GQA_BART=833; GQA_T5=500; CAP=416
    STEPS=(--steps 5 --warmup 2); SMOKE=(--n-train 512 --feat-dim 2048 --batch-size 64 --extra "--bf16 --num_workers 4")
    GOLDEN_N=0; LOADER=(--n-train 2048 --feat-dim 2048 --batch-size 500 --epochs 1 --workers 4 8)
    RUNTIME=(--paths fp32,fast --steps 2 --warmup 1)
fi

left() { echo $(( BUDGET - ($(date +%s) - START) )); }

run() {  # run NAME LIMIT CMD...: one step under min(LIMIT, what is left), stdout appended to $OUT/NAME.jsonl
    local name=$1 limit=$(( $2 * SCALE )) rest
    shift 2
    rest=$(left)
    if [ "$rest" -lt 20 ]; then
        echo "SKIPPED ($name, ${rest}s left): $*" >> "$OUT/errors.log"
        return 1
    fi
    [ "$limit" -gt "$rest" ] && limit=$rest
    if ! timeout -k 5 "$limit" "$@" >> "$OUT/$name.jsonl" 2>> "$OUT/errors.log"; then
        echo "FAILED ($name, limit ${limit}s): $*" >> "$OUT/errors.log"
        return 1
    fi
}

# ---------------------------------------------------------------------------------------------- 0. preflight
if ls .whl/*.whl >/dev/null 2>&1; then
    want=$(sed -n 's/^transformers==//p' requirements.txt)
    have=$("$PY" -c "import transformers; print(transformers.__version__)" 2>/dev/null)
    if [ "$have" != "$want" ]; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/vlpet-site \
            .whl/*.whl >> "$OUT/errors.log" 2>&1 && export PYTHONPATH="/tmp/vlpet-site:$PYTHONPATH"
        echo "carried wheels installed (machine had transformers $have, pinned $want)" >> "$OUT/machine.txt"
    fi
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  "$PY" - <<'EOF'
import torch, transformers
cuda = torch.cuda.is_available()
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
      "transformers", transformers.__version__, "gpu", torch.cuda.get_device_name() if cuda else None)
if cuda:
    from torch.backends import cuda as c
    print("sdpa flash", c.flash_sdp_enabled(), "mem_efficient", c.mem_efficient_sdp_enabled(), "math", c.math_sdp_enabled())
EOF
} >> "$OUT/machine.txt" 2>&1
if ! run preflight 60 "$PY" - "$DEVICE" <<'EOF'
import json, sys, time
import torch
from vlpet.config import ModelConfig
from vlpet.flags.published import method_preset
from vlpet.models.build import build_model
device = torch.device(sys.argv[1])
start = time.time()
model = build_model(ModelConfig(backbone="tiny-bart", feat_dim=32), method_preset("vl-pet-large", "bart")).to(device).eval()
ids = torch.randint(5, 100, (2, 7), device=device)
out = model.generate(ids, torch.randn(2, 49, 32, device=device), torch.zeros(2, 49, 4, device=device), num_beams=5)
print(json.dumps({"bench": "preflight", "beam5": "ok", "out_shape": list(out.shape), "s": round(time.time() - start, 1)}))
EOF
then
    echo "preflight failed: beam-5 generation does not run with these versions (see errors.log); stopping" >&2
    exit 1
fi

# ---------------------------------------------------------------------------------------------- 1. golden
VLPET_TEST_DEVICE=$DEVICE timeout -k 5 "$(( $(left) < 100 * SCALE ? $(left) : 100 * SCALE ))" "$PY" -m pytest -q -p no:cacheprovider \
    tests/test_golden.py $([ "$MODE" = cpu ] && echo "-k bart-bitfit") > "$OUT/golden.txt" 2>&1 \
    || echo "FAILED (golden tests): see golden.txt" >> "$OUT/errors.log"
VLPET_TEST_DEVICE=$DEVICE run golden 60 "$PY" bench/golden_report.py --fixtures "$GOLDEN_N"

# ---------------------------------------------------------------------------------------------- 2. determinism
run determinism 40 "$PY" bench/determinism.py --backbone "$BART" --device "$DEVICE" --batch 64 "${TINY[@]:0:2}"
run determinism 40 "$PY" bench/determinism.py --backbone "$BART" --device "$DEVICE" --batch 64 "${TINY[@]:0:2}" \
    --deterministic

# ---------------------------------------------------------------------------------------------- 3. trainer smoke
rm -rf "${TMPDIR:-/tmp}/vlpet-sitting"
run trainer 180 "$PY" bench/trainer_smoke.py --root "${TMPDIR:-/tmp}/vlpet-sitting" --device "$DEVICE" "${SMOKE[@]}"

# ---------------------------------------------------------------------------------------------- 4. train steps
step() { run train "$@"; }
b=(bench/train_step.py --device "$DEVICE" --method vl-pet-large "${STEPS[@]}" "${TINY[@]}")
step 60 "$PY" "${b[@]}" --backbone "$BART" --task gqa --batch "$GQA_BART"
[ "$MODE" = gpu ] && step 45 "$PY" "${b[@]}" --backbone "$BART" --task gqa --batch "$GQA_BART" --tf32
step 45 "$PY" "${b[@]}" --backbone "$BART" --task gqa --batch "$GQA_BART" --bf16
step 45 "$PY" "${b[@]}" --backbone "$BART" --task caption --batch "$CAP" --bf16
step 150 "$PY" "${b[@]}" --backbone "$BART" --task gqa --batch "$GQA_BART" --bf16 --compile \
    $([ "$MODE" = cpu ] && echo "--compile-backend aot_eager")
step 60 "$PY" "${b[@]}" --backbone "$T5" --task gqa --batch "$GQA_T5" --bf16
step 60 "$PY" "${b[@]}" --backbone "$T5" --task gqa --batch "$GQA_T5"

# ---------------------------------------------------------------------------------------------- 5. profile
run profile 45 "$PY" bench/profile_step.py train --device "$DEVICE" --backbone "$BART" --task vqa --bf16 \
    --steps 2 --warmup 1 --top 15 $([ "$MODE" = cpu ] && echo "--batch 4 ${TINY[*]}")
grep -h '^{' "$OUT/profile.jsonl" > "$OUT/profile_summary.jsonl" 2>/dev/null

# ---------------------------------------------------------------------------------------------- 6. loader
run loader 75 "$PY" bench/loader.py "${LOADER[@]}"

# ---------------------------------------------------------------------------------------------- 7. run time
run run_time 120 "$PY" bench/run_time.py --device "$DEVICE" --backbone "$BART" --method vl-pet-large \
    "${RUNTIME[@]}" "${TINY[@]}"

# ---------------------------------------------------------------------------------------------- summary
"$PY" - "$OUT" >> "$OUT/summary.jsonl" 2>> "$OUT/errors.log" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = lambda name: [json.loads(l) for l in (out / f"{name}.jsonl").read_text().splitlines()
                     if l.startswith("{")] if (out / f"{name}.jsonl").is_file() else []
steps = {(r["backbone"], r["task"], r["precision"], r["compile"]): r for r in rows("train")}
loader = next(iter(rows("loader")), {})
best = {k: v for k, v in loader.items() if k.startswith(("h5_", "packed_")) and isinstance(v, (int, float))}
for (backbone, task, precision, compiled), r in steps.items():
    need = r["samples_per_s"]
    print(json.dumps({"summary": "loader_vs_step", "backbone": backbone, "task": task, "precision": precision,
                      "compile": compiled, "step_examples_per_s": need, "peak_alloc_mb": r["cuda_peak_alloc_mb"],
                      **{f"{k}_over_step": round(v / need, 2) for k, v in best.items()}}))
EOF
echo "done in $(( $(date +%s) - START ))s of ${BUDGET}s: $(ls "$OUT" | tr '\n' ' ')" >&2
