#!/usr/bin/env bash
# VL-PET-middleY (image-text, Bart), the published positional arguments:
#   bash scripts/image-text/VL-PET-middleY.sh PORT r N_h r_d lr seed   e.g. 20000 96 4 96 1e-3 42
# Further flags after them are passed to `python -m vlpet train`. 
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
if [ $# -lt 6 ]; then echo "usage: $0 PORT R HEADS RD LR SEED [flags...]" >&2; exit 2; fi
port=$1
r=$2
heads=$3
rd=$4
lr=$5
seed=$6
shift 6
name="Encoder_MultiheadDownAdapter_dim${r}_head${heads}_GatingMiddle_ia3addLN_Decoder_VPAdapter_dim${rd}_lr${lr}_seed${seed}_RN101__bs500_image224_lr${lr}"
launch $port 1 $(image_common facebook/bart-base 500 "snap/VLBart_multitask/$name" "$name" "$lr" 20) \
    --reduction_factor 8 --use_tasks_prompts --use_adapter --use_single_adapter --no_encoder_adapter --use_adapter_down_dim --use_encoder_adapter_down_multihead --adapter_down_dim $r --encoder_adapter_multihead_num_head $heads --use_encoder_adapter_gating_middle_ia3_add --unfreeze_encoder_layer_norms --no_decoder_adapter --use_decoder_enc_attn_value_parallel_adapter_down_dim --decoder_enc_attn_value_parallel_adapter_down_dim $rd --seed $seed "$@"
