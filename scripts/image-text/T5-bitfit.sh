#!/usr/bin/env bash
# T5-bitfit (image-text, T5): the Ladder-Side-Tuning repository's VL-T5/scripts/image/bitfit.sh, its positional arguments:
#   bash scripts/image-text/T5-bitfit.sh GPU NPROC   e.g. 0 1
# Runs the script's three seeds (SEEDS="9595" runs one). Further flags after them are passed to
# `python -m vlpet train` (after the script's own, so they override them; the official script puts them before).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
lst_image "$0" 3e-3 "LMbitfit+r8+ln_bs300_image224_lr3e-3" \
    "--use_bitfit --use_tasks_prompts" "$@"
