#!/usr/bin/env bash
# T5-LST (image-text, T5): the Ladder-Side-Tuning repository's VL-T5/scripts/image/LST.sh, its positional arguments:
#   bash scripts/image-text/T5-LST.sh GPU NPROC   e.g. 0 1
# Runs the script's three seeds (SEEDS="9595" runs one). Further flags after them are passed to
# `python -m vlpet train` (after the script's own, so they override them; the official script puts them before).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
lst_image "$0" 3e-3 "base_RN101_LMside4_bs300_image224_lr3e-3" \
    "--weight_decay 3e-2 --use_side_transformers --side_reduction_factor 4 --load_side_pretrained_weights fisher-v2 --use_tasks_prompts" "$@"
