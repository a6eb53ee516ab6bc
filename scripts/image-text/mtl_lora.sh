#!/usr/bin/env bash
# mtl_lora (image-text, Bart): MTL-LoRA's published VL-BART run (pUmpKin-Co/MTL-LoRA, image_text_understanding/VL-T5/
# scripts/image/mlora.sh): batch 512, lr 1e-3, warm-up 0.03, 20 epochs, 35 beams, MTL-LoRA on q_proj/v_proj with
# rank 64, alpha 16, 2 up-projections, 4 task transforms, temperature 0.8 (vlpet/pet/mtl_lora.py). Positional
# arguments as the published launchers:
#   bash scripts/image-text/mtl_lora.sh PORT seed   e.g. 20000 42
# Further flags after them are passed to `python -m vlpet train`.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
if [ $# -lt 2 ]; then echo "usage: $0 PORT SEED [flags...]" >&2; exit 2; fi
port=$1
seed=$2
shift 2
lr=1e-3
name="mtl_lora_r64_B2_alpha16_t0.8_lr1e-3_seed${seed}_bs512_image224"
launch $port 1 $(image_common facebook/bart-base 512 "snap/VLBart_multitask/$name" "$name" "$lr" 20) \
    --warmup_ratio 0.03 --num_beams 35 --use_tasks_prompts --use_mlora --lora_dim 64 --lora_alpha 16 --B_num 2 \
    --lambda_num 4 --mlora_temperature 0.8 --seed $seed "$@"
