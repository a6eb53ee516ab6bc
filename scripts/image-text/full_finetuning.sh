#!/usr/bin/env bash
# full_finetuning (image-text, Bart), the published positional arguments:
#   bash scripts/image-text/full_finetuning.sh NPROC   e.g. 1
# Further flags after them are passed to `python -m vlpet train`. (no --seed: the official 9595)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
if [ $# -lt 1 ]; then echo "usage: $0 NPROC [flags...]" >&2; exit 2; fi
nproc=$1
shift 1
lr=1e-4
name="RN101_bs500_image224_lr1e-4"
launch 26757 $nproc $(image_common facebook/bart-base 500 "snap/VLBart_multitask/$name" "$name" "$lr" 20) \
    --unfreeze_language_model "$@"
