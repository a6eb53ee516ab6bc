#!/usr/bin/env bash
# T5-VL-PET-middleX (image-text, T5), the published positional arguments:
#   bash scripts/image-text/T5-VL-PET-middleX.sh PORT r N_h s r_d lr seed   e.g. 20000 192 4 0.3 96 3e-4 42
# Further flags after them are passed to `python -m vlpet train`. 
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
if [ $# -lt 7 ]; then echo "usage: $0 PORT R HEADS S RD LR SEED [flags...]" >&2; exit 2; fi
port=$1
r=$2
heads=$3
s=$4
rd=$5
lr=$6
seed=$7
shift 7
name="T5_bs300_Encoder_MultiheadDownAdapter_dim${r}_head${heads}_MultiheadUpZeroInit_GatingMiddle_xyaddLN_GatingScaling${s}_GatingUpZeroInit_Decoder_VPAdapter_dim${rd}_VPAUpZeroInit_lr${lr}_seed${seed}_RN101__bs300_image224_lr${lr}"
launch $port 1 $(image_common t5-base 300 "snap/VLT5_multitask/$name" "$name" "$lr" 20) \
    --reduction_factor 8 --use_tasks_prompts --use_adapter --use_single_adapter --no_encoder_adapter --use_adapter_down_dim --use_encoder_adapter_down_multihead --adapter_down_dim $r --encoder_adapter_multihead_num_head $heads --use_encoder_multihead_up_zero_init --use_encoder_adapter_gating_middle_xy_add --use_encoder_gating_scaling --encoder_gating_scaling_factor $s --use_encoder_gating_middle_up_zero_init --unfreeze_encoder_layer_norms --no_decoder_adapter --use_decoder_enc_attn_value_parallel_adapter_down_dim --decoder_enc_attn_value_parallel_adapter_down_dim $rd --use_decoder_enc_vpa_up_zero_init --seed $seed "$@"
