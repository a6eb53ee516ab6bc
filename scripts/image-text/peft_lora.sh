#!/usr/bin/env bash
# peft_lora (image-text, Bart): ours, not a published recipe (docs/peft.md): DoRA's published VL-BART setting
# (batch 300, lr 1e-3, 20 epochs, --unfreeze_bias --unfreeze_layer_norms) with peft's lora sized in
# scripts/peft/lora.json. Positional arguments as the published launchers:
#   bash scripts/image-text/peft_lora.sh PORT seed   e.g. 20000 42
# Further flags after them are passed to `python -m vlpet train`.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
peft_image lora peft_lora "$@"
