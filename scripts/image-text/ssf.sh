#!/usr/bin/env bash
# ssf (image-text, Bart): SSF, the worked example of docs/extending.md (not a method of the VL-PET paper).
#   bash scripts/image-text/ssf.sh PORT SEED   e.g. 20000 42
# Further flags after them are passed to `python -m vlpet train`.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
if [ $# -lt 2 ]; then echo "usage: $0 PORT SEED [flags...]" >&2; exit 2; fi
port=$1
seed=$2
shift 2
lr=1e-3
name="ssf_lr${lr}_seed${seed}_bs500_image224"
launch $port 1 $(image_common facebook/bart-base 500 "snap/VLBart_multitask/$name" "$name" "$lr" 20) \
    --use_tasks_prompts --use_ssf --seed $seed "$@"
