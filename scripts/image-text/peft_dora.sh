#!/usr/bin/env bash
# peft_dora (image-text, Bart): DoRA's published VL-BART run (NVlabs/DoRA, image_video_text_understanding/VL-T5/
# scripts/image/dora.sh): batch 300, lr 1e-3, 20 epochs, DoRA rank 128 on q_proj/v_proj with --unfreeze_bias
# --unfreeze_layer_norms (scripts/peft/dora.json; params: 5.96 %), through huggingface/peft. Positional arguments:
#   bash scripts/image-text/peft_dora.sh PORT seed   e.g. 20000 42
# Further flags after them are passed to `python -m vlpet train`.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
peft_image dora peft_dora_r128 "$@"
