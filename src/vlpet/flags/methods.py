"""The published flags of every method by name: ``python -m vlpet train --method NAME`` expands to them.

One entry per launcher of ``scripts/`` (image-text BART and T5, video-text BART), keyed by (domain, backbone kind,
method name); the names are those of ``python -m vlpet params --method``. Each entry is what the launcher passes to
``python -m vlpet train`` with the positional values its header gives as the example (the paper's settings), less
where the run is kept (--output, --run_name), --num_workers and --seed. tests/test_cli_route.py checks every entry
against its launcher (``VLPET_PRINT_ARGS=1``), so the two cannot drift apart.
"""

from __future__ import annotations

# (domain, kind, method) -> (launcher, flags)
PUBLISHED_FLAGS: dict[tuple[str, str, str], tuple[str, str]] = {
    ("image", "t5", "lst"): (
        "scripts/image-text/T5-LST.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 3e-3 --epochs 20 --backbone t5-base --num_beams 5 "
        "--batch_size 300 --valid_batch_size 300 --tasks vqa,gqa,nlvr,caption --feature RN101 --n_boxes 36 "
        "--downsample --image_size (224,224) --weight_decay 3e-2 --use_side_transformers --side_reduction_factor 4 "
        "--load_side_pretrained_weights fisher-v2 --use_tasks_prompts"),
    ("image", "t5", "vl-pet-large"): (
        "scripts/image-text/T5-VL-PET-large.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 3e-4 --epochs 20 --backbone t5-base --num_beams 5 "
        "--batch_size 300 --valid_batch_size 300 --tasks vqa,gqa,nlvr,caption --feature RN101 --n_boxes 36 "
        "--downsample --image_size (224,224) --reduction_factor 8 --use_tasks_prompts --use_adapter "
        "--use_single_adapter --no_encoder_adapter --use_adapter_down_dim --use_encoder_adapter_down_multihead "
        "--adapter_down_dim 192 --encoder_adapter_multihead_num_head 4 --use_encoder_multihead_up_zero_init "
        "--use_encoder_adapter_gating_large_x_lowrank --adapter_gating_down_dim 192 --use_encoder_gating_scaling "
        "--encoder_gating_scaling_factor 0.3 --use_encoder_gating_large_x_lowrank_up_zero_init "
        "--unfreeze_encoder_layer_norms --no_decoder_adapter --use_decoder_enc_attn_value_parallel_adapter_down_dim "
        "--decoder_enc_attn_value_parallel_adapter_down_dim 96 --use_decoder_enc_vpa_up_zero_init"),
    ("image", "t5", "vl-pet-middlex"): (
        "scripts/image-text/T5-VL-PET-middleX.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 3e-4 --epochs 20 --backbone t5-base --num_beams 5 "
        "--batch_size 300 --valid_batch_size 300 --tasks vqa,gqa,nlvr,caption --feature RN101 --n_boxes 36 "
        "--downsample --image_size (224,224) --reduction_factor 8 --use_tasks_prompts --use_adapter "
        "--use_single_adapter --no_encoder_adapter --use_adapter_down_dim --use_encoder_adapter_down_multihead "
        "--adapter_down_dim 192 --encoder_adapter_multihead_num_head 4 --use_encoder_multihead_up_zero_init "
        "--use_encoder_adapter_gating_middle_xy_add --use_encoder_gating_scaling --encoder_gating_scaling_factor "
        "0.3 --use_encoder_gating_middle_up_zero_init --unfreeze_encoder_layer_norms --no_decoder_adapter "
        "--use_decoder_enc_attn_value_parallel_adapter_down_dim --decoder_enc_attn_value_parallel_adapter_down_dim "
        "96 --use_decoder_enc_vpa_up_zero_init"),
    ("image", "t5", "vl-pet-middley"): (
        "scripts/image-text/T5-VL-PET-middleY.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 3e-4 --epochs 20 --backbone t5-base --num_beams 5 "
        "--batch_size 300 --valid_batch_size 300 --tasks vqa,gqa,nlvr,caption --feature RN101 --n_boxes 36 "
        "--downsample --image_size (224,224) --reduction_factor 8 --use_tasks_prompts --use_adapter "
        "--use_single_adapter --no_encoder_adapter --use_adapter_down_dim --use_encoder_adapter_down_multihead "
        "--adapter_down_dim 192 --encoder_adapter_multihead_num_head 4 --use_encoder_multihead_up_zero_init "
        "--use_encoder_adapter_gating_middle_ia3_add --use_encoder_gating_scaling --encoder_gating_scaling_factor "
        "0.3 --use_encoder_gating_middle_ia3_zero_init --unfreeze_encoder_layer_norms --no_decoder_adapter "
        "--use_decoder_enc_attn_value_parallel_adapter_down_dim --decoder_enc_attn_value_parallel_adapter_down_dim "
        "96 --use_decoder_enc_vpa_up_zero_init"),
    ("image", "t5", "vl-pet-small"): (
        "scripts/image-text/T5-VL-PET-small.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 3e-4 --epochs 20 --backbone t5-base --num_beams 5 "
        "--batch_size 300 --valid_batch_size 300 --tasks vqa,gqa,nlvr,caption --feature RN101 --n_boxes 36 "
        "--downsample --image_size (224,224) --reduction_factor 8 --use_tasks_prompts --use_adapter "
        "--use_single_adapter --no_encoder_adapter --use_adapter_down_dim --use_encoder_adapter_down_multihead "
        "--adapter_down_dim 192 --encoder_adapter_multihead_num_head 4 --use_encoder_multihead_up_zero_init "
        "--use_encoder_adapter_gating_small_xy_cat --use_encoder_gating_scaling --encoder_gating_scaling_factor 0.3 "
        "--use_encoder_gating_small_up_zero_init --unfreeze_encoder_layer_norms --no_decoder_adapter "
        "--use_decoder_enc_attn_value_parallel_adapter_down_dim --decoder_enc_attn_value_parallel_adapter_down_dim "
        "96 --use_decoder_enc_vpa_up_zero_init"),
    ("image", "t5", "adapter"): (
        "scripts/image-text/T5-adapter.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 3e-4 --epochs 20 --backbone t5-base --num_beams 5 "
        "--batch_size 300 --valid_batch_size 300 --tasks vqa,gqa,nlvr,caption --feature RN101 --n_boxes 36 "
        "--downsample --image_size (224,224) --use_adapter --unfreeze_layer_norms --reduction_factor 4 "
        "--use_single_adapter --use_tasks_prompts"),
    ("image", "t5", "bitfit"): (
        "scripts/image-text/T5-bitfit.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 3e-3 --epochs 20 --backbone t5-base --num_beams 5 "
        "--batch_size 300 --valid_batch_size 300 --tasks vqa,gqa,nlvr,caption --feature RN101 --n_boxes 36 "
        "--downsample --image_size (224,224) --use_bitfit --use_tasks_prompts"),
    ("image", "t5", "full_finetuning"): (
        "scripts/image-text/T5-full_finetuning.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 1e-4 --epochs 20 --backbone t5-base --num_beams 5 "
        "--batch_size 300 --valid_batch_size 300 --tasks vqa,gqa,nlvr,caption --feature RN101 --n_boxes 36 "
        "--downsample --image_size (224,224) --use_tasks_prompts --unfreeze_language_model"),
    ("image", "t5", "lora"): (
        "scripts/image-text/T5-lora.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 3e-4 --epochs 20 --backbone t5-base --num_beams 5 "
        "--batch_size 300 --valid_batch_size 300 --tasks vqa,gqa,nlvr,caption --feature RN101 --n_boxes 36 "
        "--downsample --image_size (224,224) --use_lora --lora_dim 150 --use_single_lora --use_tasks_prompts"),
    ("image", "t5", "prompt_tuning"): (
        "scripts/image-text/T5-prompt_tuning.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 3e-3 --epochs 20 --backbone t5-base --num_beams 5 "
        "--batch_size 300 --valid_batch_size 300 --tasks vqa,gqa,nlvr,caption --feature RN101 --n_boxes 36 "
        "--downsample --image_size (224,224) --encoder_prompt_len 40 --mid_dim 800 --use_single_prompt "
        "--use_tasks_prompts"),
    ("image", "bart", "vl-pet-large"): (
        "scripts/image-text/VL-PET-large.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 1e-3 --epochs 20 --backbone facebook/bart-base "
        "--num_beams 5 --batch_size 500 --valid_batch_size 500 --tasks vqa,gqa,nlvr,caption --feature RN101 "
        "--n_boxes 36 --downsample --image_size (224,224) --reduction_factor 8 --use_tasks_prompts --use_adapter "
        "--use_single_adapter --no_encoder_adapter --use_adapter_down_dim --use_encoder_adapter_down_multihead "
        "--adapter_down_dim 96 --encoder_adapter_multihead_num_head 4 --use_encoder_adapter_gating_large_x_lowrank "
        "--adapter_gating_down_dim 96 --unfreeze_encoder_layer_norms --no_decoder_adapter "
        "--use_decoder_enc_attn_value_parallel_adapter_down_dim --decoder_enc_attn_value_parallel_adapter_down_dim "
        "96"),
    ("image", "bart", "vl-pet-middlex"): (
        "scripts/image-text/VL-PET-middleX.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 1e-3 --epochs 20 --backbone facebook/bart-base "
        "--num_beams 5 --batch_size 500 --valid_batch_size 500 --tasks vqa,gqa,nlvr,caption --feature RN101 "
        "--n_boxes 36 --downsample --image_size (224,224) --reduction_factor 8 --use_tasks_prompts --use_adapter "
        "--use_single_adapter --no_encoder_adapter --use_adapter_down_dim --use_encoder_adapter_down_multihead "
        "--adapter_down_dim 96 --encoder_adapter_multihead_num_head 4 --use_encoder_adapter_gating_middle_xy_add "
        "--unfreeze_encoder_layer_norms --no_decoder_adapter --use_decoder_enc_attn_value_parallel_adapter_down_dim "
        "--decoder_enc_attn_value_parallel_adapter_down_dim 96"),
    ("image", "bart", "vl-pet-middley"): (
        "scripts/image-text/VL-PET-middleY.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 1e-3 --epochs 20 --backbone facebook/bart-base "
        "--num_beams 5 --batch_size 500 --valid_batch_size 500 --tasks vqa,gqa,nlvr,caption --feature RN101 "
        "--n_boxes 36 --downsample --image_size (224,224) --reduction_factor 8 --use_tasks_prompts --use_adapter "
        "--use_single_adapter --no_encoder_adapter --use_adapter_down_dim --use_encoder_adapter_down_multihead "
        "--adapter_down_dim 96 --encoder_adapter_multihead_num_head 4 --use_encoder_adapter_gating_middle_ia3_add "
        "--unfreeze_encoder_layer_norms --no_decoder_adapter --use_decoder_enc_attn_value_parallel_adapter_down_dim "
        "--decoder_enc_attn_value_parallel_adapter_down_dim 96"),
    ("image", "bart", "vl-pet-small"): (
        "scripts/image-text/VL-PET-small.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 1e-3 --epochs 20 --backbone facebook/bart-base "
        "--num_beams 5 --batch_size 500 --valid_batch_size 500 --tasks vqa,gqa,nlvr,caption --feature RN101 "
        "--n_boxes 36 --downsample --image_size (224,224) --reduction_factor 8 --use_tasks_prompts --use_adapter "
        "--use_single_adapter --no_encoder_adapter --use_adapter_down_dim --use_encoder_adapter_down_multihead "
        "--adapter_down_dim 96 --encoder_adapter_multihead_num_head 4 --use_encoder_adapter_gating_small_xy_cat "
        "--unfreeze_encoder_layer_norms --no_decoder_adapter --use_decoder_enc_attn_value_parallel_adapter_down_dim "
        "--decoder_enc_attn_value_parallel_adapter_down_dim 96"),
    ("image", "bart", "bitfit"): (
        "scripts/image-text/bitfit.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 1e-3 --epochs 20 --backbone facebook/bart-base "
        "--num_beams 5 --batch_size 500 --valid_batch_size 500 --tasks vqa,gqa,nlvr,caption --feature RN101 "
        "--n_boxes 36 --downsample --image_size (224,224) --use_tasks_prompts --unfreeze_bias"),
    ("image", "bart", "full_finetuning"): (
        "scripts/image-text/full_finetuning.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 1e-4 --epochs 20 --backbone facebook/bart-base "
        "--num_beams 5 --batch_size 500 --valid_batch_size 500 --tasks vqa,gqa,nlvr,caption --feature RN101 "
        "--n_boxes 36 --downsample --image_size (224,224) --unfreeze_language_model"),
    ("image", "bart", "hyperformer"): (
        "scripts/image-text/hyperformer.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 1e-3 --epochs 20 --backbone facebook/bart-base "
        "--num_beams 5 --batch_size 500 --valid_batch_size 500 --tasks vqa,gqa,nlvr,caption --feature RN101 "
        "--n_boxes 36 --downsample --image_size (224,224) --use_hyperformer --unique_hyper_net "
        "--unfreeze_layer_norms --projected_task_embedding_dim 8 --reduction_factor 8"),
    ("image", "bart", "single_adapter"): (
        "scripts/image-text/single_adapter.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 1e-3 --epochs 20 --backbone facebook/bart-base "
        "--num_beams 5 --batch_size 500 --valid_batch_size 500 --tasks vqa,gqa,nlvr,caption --feature RN101 "
        "--n_boxes 36 --downsample --image_size (224,224) --use_adapter --unfreeze_layer_norms --reduction_factor 8 "
        "--use_single_adapter --use_tasks_prompts"),
    ("image", "bart", "single_compacter"): (
        "scripts/image-text/single_compacter.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 1e-3 --epochs 20 --backbone facebook/bart-base "
        "--num_beams 5 --batch_size 500 --valid_batch_size 500 --tasks vqa,gqa,nlvr,caption --feature RN101 "
        "--n_boxes 36 --downsample --image_size (224,224) --use_tasks_prompts --hypercomplex_division 2 "
        "--reduction_factor 8 --use_compacter --shared_phm_rule False --factorized_phm False --unfreeze_layer_norms "
        "--use_single_adapter"),
    ("image", "bart", "single_lora"): (
        "scripts/image-text/single_lora.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 1e-3 --epochs 20 --backbone facebook/bart-base "
        "--num_beams 5 --batch_size 500 --valid_batch_size 500 --tasks vqa,gqa,nlvr,caption --feature RN101 "
        "--n_boxes 36 --downsample --image_size (224,224) --use_tasks_prompts --use_lora --lora_dim 128 "
        "--use_single_lora"),
    ("image", "bart", "single_prompt"): (
        "scripts/image-text/single_prompt.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 1e-3 --epochs 20 --backbone facebook/bart-base "
        "--num_beams 5 --batch_size 500 --valid_batch_size 500 --tasks vqa,gqa,nlvr,caption --feature RN101 "
        "--n_boxes 36 --downsample --image_size (224,224) --use_tasks_prompts --encoder_prompt_len 40 --mid_dim 800 "
        "--use_single_prompt"),
    # Not published: SSF, the worked example of docs/extending.md.
    ("image", "bart", "ssf"): (
        "scripts/image-text/ssf.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 1e-3 --epochs 20 --backbone facebook/bart-base "
        "--num_beams 5 --batch_size 500 --valid_batch_size 500 --tasks vqa,gqa,nlvr,caption --feature RN101 "
        "--n_boxes 36 --downsample --image_size (224,224) --use_tasks_prompts --use_ssf"),
    ("video", "bart", "vl-pet-large"): (
        "scripts/video-text/VL-PET-large.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 7e-4 --epochs 20 --backbone facebook/bart-base "
        "--num_beams 5 --batch_size 50 --valid_batch_size 50 --use_tasks_prompts --tasks tvqa,how2qa,tvc,yc2c "
        "--feature ViT --n_boxes 64 --downsample --image_size (224,224) --reduction_factor 8 --use_adapter "
        "--use_single_adapter --no_encoder_adapter --use_adapter_down_dim --use_encoder_adapter_down_multihead "
        "--adapter_down_dim 96 --encoder_adapter_multihead_num_head 4 --use_encoder_adapter_gating_large_x_lowrank "
        "--adapter_gating_down_dim 96 --unfreeze_encoder_layer_norms --no_decoder_adapter "
        "--use_decoder_enc_attn_value_parallel_adapter_down_dim --decoder_enc_attn_value_parallel_adapter_down_dim "
        "96"),
    ("video", "bart", "vl-pet-middlex"): (
        "scripts/video-text/VL-PET-middleX.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 7e-4 --epochs 20 --backbone facebook/bart-base "
        "--num_beams 5 --batch_size 50 --valid_batch_size 50 --use_tasks_prompts --tasks tvqa,how2qa,tvc,yc2c "
        "--feature ViT --n_boxes 64 --downsample --image_size (224,224) --reduction_factor 8 --use_adapter "
        "--use_single_adapter --no_encoder_adapter --use_adapter_down_dim --use_encoder_adapter_down_multihead "
        "--adapter_down_dim 96 --encoder_adapter_multihead_num_head 4 --use_encoder_adapter_gating_middle_xy_add "
        "--unfreeze_encoder_layer_norms --no_decoder_adapter --use_decoder_enc_attn_value_parallel_adapter_down_dim "
        "--decoder_enc_attn_value_parallel_adapter_down_dim 96"),
    ("video", "bart", "vl-pet-middley"): (
        "scripts/video-text/VL-PET-middleY.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 7e-4 --epochs 20 --backbone facebook/bart-base "
        "--num_beams 5 --batch_size 50 --valid_batch_size 50 --use_tasks_prompts --tasks tvqa,how2qa,tvc,yc2c "
        "--feature ViT --n_boxes 64 --downsample --image_size (224,224) --reduction_factor 8 --use_adapter "
        "--use_single_adapter --no_encoder_adapter --use_adapter_down_dim --use_encoder_adapter_down_multihead "
        "--adapter_down_dim 96 --encoder_adapter_multihead_num_head 4 --use_encoder_adapter_gating_middle_ia3_add "
        "--unfreeze_encoder_layer_norms --no_decoder_adapter --use_decoder_enc_attn_value_parallel_adapter_down_dim "
        "--decoder_enc_attn_value_parallel_adapter_down_dim 96"),
    ("video", "bart", "vl-pet-small"): (
        "scripts/video-text/VL-PET-small.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 7e-4 --epochs 20 --backbone facebook/bart-base "
        "--num_beams 5 --batch_size 50 --valid_batch_size 50 --use_tasks_prompts --tasks tvqa,how2qa,tvc,yc2c "
        "--feature ViT --n_boxes 64 --downsample --image_size (224,224) --reduction_factor 8 --use_adapter "
        "--use_single_adapter --no_encoder_adapter --use_adapter_down_dim --use_encoder_adapter_down_multihead "
        "--adapter_down_dim 96 --encoder_adapter_multihead_num_head 4 --use_encoder_adapter_gating_small_xy_cat "
        "--unfreeze_encoder_layer_norms --no_decoder_adapter --use_decoder_enc_attn_value_parallel_adapter_down_dim "
        "--decoder_enc_attn_value_parallel_adapter_down_dim 96"),
    ("video", "bart", "bitfit"): (
        "scripts/video-text/bitfit.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 1e-3 --epochs 20 --backbone facebook/bart-base "
        "--num_beams 5 --batch_size 50 --valid_batch_size 50 --use_tasks_prompts --tasks tvqa,how2qa,tvc,yc2c "
        "--feature ViT --n_boxes 64 --downsample --image_size (224,224) --unfreeze_bias"),
    ("video", "bart", "full_finetuning"): (
        "scripts/video-text/full_finetuning.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 1e-3 --epochs 20 --backbone facebook/bart-base "
        "--num_beams 5 --batch_size 50 --valid_batch_size 50 --use_tasks_prompts --tasks tvqa,how2qa,tvc,yc2c "
        "--feature ViT --n_boxes 64 --downsample --image_size (224,224) --unfreeze_language_model"),
    ("video", "bart", "single_adapter"): (
        "scripts/video-text/single_adapter.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 1e-3 --epochs 20 --backbone facebook/bart-base "
        "--num_beams 5 --batch_size 50 --valid_batch_size 50 --use_tasks_prompts --tasks tvqa,how2qa,tvc,yc2c "
        "--feature ViT --n_boxes 64 --downsample --image_size (224,224) --use_adapter --use_single_adapter "
        "--unfreeze_layer_norms --reduction_factor 8"),
    ("video", "bart", "single_compacter"): (
        "scripts/video-text/single_compacter.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 1e-3 --epochs 20 --backbone facebook/bart-base "
        "--num_beams 5 --batch_size 50 --valid_batch_size 50 --use_tasks_prompts --tasks tvqa,how2qa,tvc,yc2c "
        "--feature ViT --n_boxes 64 --downsample --image_size (224,224) --hypercomplex_division 2 "
        "--reduction_factor 8 --use_compacter --shared_phm_rule False --factorized_phm False --unfreeze_layer_norms "
        "--use_single_adapter"),
    ("video", "bart", "single_lora"): (
        "scripts/video-text/single_lora.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 1e-3 --epochs 20 --backbone facebook/bart-base "
        "--num_beams 5 --batch_size 50 --valid_batch_size 50 --use_tasks_prompts --tasks tvqa,how2qa,tvc,yc2c "
        "--feature ViT --n_boxes 64 --downsample --image_size (224,224) --use_lora --use_single_lora --lora_dim 128"),
    ("video", "bart", "single_prompt"): (
        "scripts/video-text/single_prompt.sh",
        "--optim adamw --warmup_ratio 0.1 --clip_grad_norm 5 --lr 1e-3 --epochs 20 --backbone facebook/bart-base "
        "--num_beams 5 --batch_size 50 --valid_batch_size 50 --use_tasks_prompts --tasks tvqa,how2qa,tvc,yc2c "
        "--feature ViT --n_boxes 64 --downsample --image_size (224,224) --encoder_prompt_len 40 --mid_dim 800 "
        "--use_single_prompt"),
}
