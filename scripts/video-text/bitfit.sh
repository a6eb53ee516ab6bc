#!/usr/bin/env bash
# bitfit (video-text, Bart), the published positional arguments:
#   bash scripts/video-text/bitfit.sh PORT LR EPOCHS SEED BATCH   e.g. 20002 1e-3 20 42 50
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
name="bitfit_batchsize${batch}_lr${lr}_epoch${epoch}_seed${seed}_bs${batch}_image224_lr${lr}_epoch${epoch}"
launch $port 1 $(video_common facebook/bart-base "$batch" "snap/VLBart_multitask_video/$name" "$name" "$lr" "$epoch") \
    --unfreeze_bias --seed $seed "$@"
