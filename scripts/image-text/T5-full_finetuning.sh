#!/usr/bin/env bash
# T5-full_finetuning (image-text, T5): the Ladder-Side-Tuning repository's VL-T5/scripts/image/full_finetuning.sh, its positional arguments:
#   bash scripts/image-text/T5-full_finetuning.sh GPU NPROC   e.g. 0 1
# Runs the script's three seeds (SEEDS="9595" runs one). Further flags after them are passed to
# `python -m vlpet train` (after the script's own, so they override them; the official script puts them before).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
lst_image "$0" 1e-4 "LMfull_bs300_image224_lr1e-4" \
    "--use_tasks_prompts --unfreeze_language_model" "$@"
