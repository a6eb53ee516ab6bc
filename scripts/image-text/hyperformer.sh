#!/usr/bin/env bash
# hyperformer (image-text, Bart), the published positional arguments:
#   bash scripts/image-text/hyperformer.sh PORT seed   e.g. 20000 42
# Further flags after them are passed to `python -m vlpet train`. (no --use_tasks_prompts, as published)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
if [ $# -lt 2 ]; then echo "usage: $0 PORT SEED [flags...]" >&2; exit 2; fi
port=$1
seed=$2
shift 2
lr=1e-3
name="hyperformer_projected_task_embedding_dim8_lr1e-3_seed${seed}_RN101_LMhyperformer8+r8+ln_bs500_image224_lr1e-3"
launch $port 1 $(image_common facebook/bart-base 500 "snap/VLBart_multitask/$name" "$name" "$lr" 20) \
    --use_hyperformer --unique_hyper_net --unfreeze_layer_norms --projected_task_embedding_dim 8 --reduction_factor 8 --seed $seed "$@"
