#!/usr/bin/env bash
# full_finetuning (video-text, Bart), the published positional arguments:
#   bash scripts/video-text/full_finetuning.sh PORT LR EPOCHS SEED   e.g. 20002 1e-3 20 42
# Further flags after them are passed to `python -m vlpet train` (e.g. --datasets_root /data --resume).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
if [ $# -lt 4 ]; then echo "usage: $0 PORT LR EPOCHS SEED [flags...]" >&2; exit 2; fi
port=$1
lr=$2
epoch=$3
seed=$4
shift 4
name="full_finetuning_lr${lr}_epoch${epoch}_seed${seed}_bs50_image224_lr${lr}_epoch${epoch}"
launch $port 1 $(video_common facebook/bart-base 50 "snap/VLBart_multitask_video/$name" "$name" "$lr" "$epoch") \
    --unfreeze_language_model --seed $seed "$@"
