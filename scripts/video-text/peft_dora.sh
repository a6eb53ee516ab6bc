#!/usr/bin/env bash
# peft_dora (video-text, Bart): DoRA's published VL-BART video run (NVlabs/DoRA, image_video_text_understanding/
# VL-T5/scripts/video/dora.sh): batch 40, lr 2.4e-4, 7 epochs, DoRA rank 128 on q_proj/v_proj with --unfreeze_bias
# (no LayerNorms; scripts/peft/dora_video.json; params --video: 5.19 %). Positional arguments as the video launchers:
#   bash scripts/video-text/peft_dora.sh PORT LR EPOCHS SEED BATCH   e.g. 20002 2.4e-4 7 42 40
# Further flags after them are passed to `python -m vlpet train` (e.g. --datasets_root /data --resume).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
if [ $# -lt 5 ]; then echo "usage: $0 PORT LR EPOCHS SEED BATCH [flags...]" >&2; exit 2; fi
port=$1
lr=$2
epoch=$3
seed=$4
batch=$5
shift 5
name="peft_dora_r128_batchsize${batch}_lr${lr}_epoch${epoch}_seed${seed}_ViT_image224"
launch $port 1 $(video_common facebook/bart-base "$batch" "snap/VLBart_multitask_video/$name" "$name" "$lr" "$epoch") \
    --peft_config scripts/peft/dora_video.json --unfreeze_bias --seed $seed "$@"
