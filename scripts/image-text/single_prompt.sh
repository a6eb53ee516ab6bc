#!/usr/bin/env bash
# single_prompt (image-text, Bart), the published positional arguments:
#   bash scripts/image-text/single_prompt.sh PORT lr seed   e.g. 20000 1e-3 42
# Further flags after them are passed to `python -m vlpet train`. 
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
if [ $# -lt 3 ]; then echo "usage: $0 PORT LR SEED [flags...]" >&2; exit 2; fi
port=$1
lr=$2
seed=$3
shift 3
name="single_prompt_lr${lr}_seed${seed}_RN101_bs500_image224_lr${lr}"
launch $port 1 $(image_common facebook/bart-base 500 "snap/VLBart_multitask/$name" "$name" "$lr" 20) \
    --use_tasks_prompts --encoder_prompt_len 40 --mid_dim 800 --use_single_prompt --seed $seed "$@"
