#!/usr/bin/env bash
# single_compacter (image-text, Bart), the published positional arguments:
#   bash scripts/image-text/single_compacter.sh PORT lr seed   e.g. 20000 1e-3 42
# Further flags after them are passed to `python -m vlpet train`. 
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
if [ $# -lt 3 ]; then echo "usage: $0 PORT LR SEED [flags...]" >&2; exit 2; fi
port=$1
lr=$2
seed=$3
shift 3
name="single_compacter_lr${lr}_seed${seed}_RN101_hdiv2+noshare+nofac+ln+prompt_bs500_image224_lr${lr}"
launch $port 1 $(image_common facebook/bart-base 500 "snap/VLBart_multitask/$name" "$name" "$lr" 20) \
    --use_tasks_prompts --hypercomplex_division 2 --reduction_factor 8 --use_compacter --shared_phm_rule False --factorized_phm False --unfreeze_layer_norms --use_single_adapter --seed $seed "$@"
