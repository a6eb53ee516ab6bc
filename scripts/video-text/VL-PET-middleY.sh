#!/usr/bin/env bash
# VL-PET-middleY (video-text, Bart), the published positional arguments:
#   bash scripts/video-text/VL-PET-middleY.sh PORT R HEADS RD LR EPOCHS SEED   e.g. 20002 96 4 96 7e-4 20 42
# Further flags after them are passed to `python -m vlpet train` (e.g. --datasets_root /data --resume).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
if [ $# -lt 7 ]; then echo "usage: $0 PORT R HEADS RD LR EPOCHS SEED [flags...]" >&2; exit 2; fi
port=$1
r=$2
heads=$3
rd=$4
lr=$5
epoch=$6
seed=$7
shift 7
name="gating_middle_ia3_add_Encoder_MultiheadDownAdapter_dim${r}_head${heads}_GatingMiddle_ia3addLN_Decoder_VPAdapter_dim${rd}_lr${lr}_epoch${epoch}_seed${seed}_bs50_image224_lr${lr}_epoch${epoch}"
launch $port 1 $(video_common facebook/bart-base 50 "snap/VLBart_multitask_video/$name" "$name" "$lr" "$epoch") \
    --reduction_factor 8 --use_adapter --use_single_adapter --no_encoder_adapter --use_adapter_down_dim --use_encoder_adapter_down_multihead --adapter_down_dim $r --encoder_adapter_multihead_num_head $heads --use_encoder_adapter_gating_middle_ia3_add --unfreeze_encoder_layer_norms --no_decoder_adapter --use_decoder_enc_attn_value_parallel_adapter_down_dim --decoder_enc_attn_value_parallel_adapter_down_dim $rd --seed $seed "$@"
