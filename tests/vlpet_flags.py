"""Official command-line flags of a small VL-PET run, shared by the trainer tests (published flag names, tiny sizes)."""

VLPET = ("--use_adapter --use_single_adapter --no_encoder_adapter --use_adapter_down_dim "
         "--use_encoder_adapter_down_multihead --adapter_down_dim 16 --encoder_adapter_multihead_num_head 4 "
         "--unfreeze_encoder_layer_norms --no_decoder_adapter --use_decoder_enc_attn_value_parallel_adapter_down_dim "
         "--decoder_enc_attn_value_parallel_adapter_down_dim 16")
GATES = {"small": "--use_encoder_adapter_gating_small_xy_cat", "middlex": "--use_encoder_adapter_gating_middle_xy_add",
         "middley": "--use_encoder_adapter_gating_middle_ia3_add",
         "large": "--use_encoder_adapter_gating_large_x_lowrank --adapter_gating_down_dim 16"}
