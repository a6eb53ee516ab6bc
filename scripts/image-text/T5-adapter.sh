#!/usr/bin/env bash
# T5-adapter (image-text, T5): the Ladder-Side-Tuning repository's VL-T5/scripts/image/adapter.sh, its positional arguments:
#   bash scripts/image-text/T5-adapter.sh GPU NPROC   e.g. 0 1
# Runs the script's three seeds (SEEDS="9595" runs one). Further flags after them are passed to
# `python -m vlpet train` (after the script's own, so they override them; the official script puts them before).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
lst_image "$0" 3e-4 "LMOneadapter+r4+ln_bs300_image224_lr3e-4" \
    "--use_adapter --unfreeze_layer_norms --reduction_factor 4 --use_single_adapter --use_tasks_prompts" "$@"
