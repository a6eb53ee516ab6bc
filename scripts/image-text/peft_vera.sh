#!/usr/bin/env bash
# peft_vera (image-text, Bart): ours, not a published recipe (docs/peft.md): DoRA's published VL-BART setting
# (batch 300, lr 1e-3, 20 epochs, --unfreeze_bias --unfreeze_layer_norms) with peft's vera sized in
# scripts/peft/vera.json. Positional arguments as the published launchers:
#   bash scripts/image-text/peft_vera.sh PORT seed   e.g. 20000 42
# Further flags after them are passed to `python -m vlpet train`.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
if [ $# -lt 2 ]; then echo "usage: $0 PORT SEED [flags...]" >&2; exit 2; fi
port=$1
seed=$2
shift 2
lr=1e-3
name="peft_vera_lr1e-3_seed${seed}_bs300_image224"
launch $port 1 $(image_common facebook/bart-base 300 "snap/VLBart_multitask/$name" "$name" "$lr" 20) \
    --use_tasks_prompts --peft_config scripts/peft/vera.json --unfreeze_bias --unfreeze_layer_norms --seed $seed "$@"
