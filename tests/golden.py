"""Run one golden fixture of the official code (``tests/fixtures/{official,official-lst}/<name>/``) through our model.

A fixture holds the official argv, a tiny HF config, the official state dict, inputs and reference outputs
(fixtures README). We rebuild the model from the argv through ``vlpet.flags.published`` (the published flag mapping), load
the state dict through ``vlpet.pet.official``, and recompute everything in eval mode, float32.

``VLPET_TEST_DEVICE=cuda`` (default cpu) runs the fixtures on that device: it becomes torch's default device (so
the tests' own tensors are created there too), the fixture files load onto it, and TF32 is off (IEEE fp32
matmuls and convolutions), so the same tolerances apply. ``bench/golden_report.py`` prints the max deviations.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file

from vlpet import losses
from vlpet.config import ModelConfig
from vlpet.models.build import build_model
from vlpet.flags.published import build_parser, explicit_dests, model_config_from_args, pet_config_from_args
from vlpet.pet.official import load_official_state_dict, official_key_table

DEVICE = os.environ.get("VLPET_TEST_DEVICE", "cpu")
if DEVICE != "cpu":
    torch.set_default_device(DEVICE)
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    torch.backends.cudnn.conv.fp32_precision = "ieee"

# The official VL-PET code's fixtures and the Ladder-Side-Tuning code's (T5 baselines, LST): one format.
DEFAULT_DIRS = [Path(__file__).resolve().parent / "fixtures" / name for name in ("official", "official-lst")]
_BART_ARCH = ("d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads", "decoder_attention_heads",
              "encoder_ffn_dim", "decoder_ffn_dim", "max_position_embeddings", "activation_function",
              "pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id", "init_std")
_T5_ARCH = ("d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
            "relative_attention_num_buckets", "layer_norm_epsilon", "feed_forward_proj", "pad_token_id",
            "eos_token_id", "decoder_start_token_id")


# ----------------------------------------------------------------------------------------------- tolerance
# Our model and the official code compute the same float32 math, but not in the same order: another processor
# (AVX2 vs AVX-512 kernels, another oneDNN / MKL build), another attention kernel (sdpa vs eager) or CUDA (TF32 off)
# sums each dot product in another order. Reordering a float32 sum of K terms changes it by at most ~K·eps (in
# practice ~sqrt(K)·eps) relative to the sum of the terms' magnitudes, and every layer adds such an error on top of
# what it receives (LayerNorm keeps the stream O(1), so the errors add up rather than multiply). Hence the bound, per
# element:
#     |ours - ref| <= ATOL + RTOL·|ref|,   ATOL = ULPS·depth·eps·max|ref|,   RTOL = ULPS·depth·eps
# with eps = 2^-23 ≈ 1.19e-7 (float32), depth = the layers on the longest path (encoder + decoder + 1 for the
# visual embedding / LM head), and ULPS = 64 per layer: an error of 64 ulps of the tensor's largest value per
# layer. For the tiny fixtures (depth 5) that is 320 ulps ≈ 3.8e-5 of max|ref|. Measured: this machine's worst
# deviation is ~1.3e-6 of max|ref|, a float64 rerun of our model (a maximally different summation) ~1.2e-6, and the
# AVX-512 EPYC that failed the former fixed 1e-5 bound 1.7e-5 on LST logits of max ~5 (3e-6 of max|ref|): 10x
# inside. A real defect moves outputs by much more: an adapter's output scaled by 1.01 moves them by ~2e-3 of
# max|ref| (50x outside), a dropped or swapped gate by ~1e-1; test_golden_tolerance.py keeps such mutants failing.
EPS = torch.finfo(torch.float32).eps
ULPS = 64
DEVIATIONS: dict[str, dict[str, tuple[float, float]]] = {}  # fixture -> tensor -> (max |Δ| / max|ref|, used / allowed)


def depth_of(config: dict) -> int:
    """The layers on the longest path of a fixture's tiny config (BART or T5), plus one."""
    layers = [config.get(k) for k in ("encoder_layers", "decoder_layers", "num_layers", "num_decoder_layers")]
    return sum(n for n in layers if isinstance(n, int)) + 1


def check_close(fixture: str, key: str, got: torch.Tensor, ref: torch.Tensor, depth: int) -> float:
    """Assert ``got`` ≈ ``ref`` within the float32 reordering bound above; record and return the deviation as a
    fraction of the bound (≤ 1 passes). NaN or a shape mismatch fails."""
    assert got.shape == ref.shape, f"{fixture} {key}: shape {tuple(got.shape)} != {tuple(ref.shape)}"
    got, ref = got.detach().double(), ref.detach().double()
    scale = ref.abs().max().item() if ref.numel() else 0.0
    rtol = ULPS * depth * EPS
    bound = rtol * scale + rtol * ref.abs()
    diff = (got - ref).abs()
    used = (diff / bound.clamp_min(torch.finfo(torch.float64).tiny)).max().item() if ref.numel() else 0.0
    worst = diff.max().item() if ref.numel() else 0.0
    relative = worst / scale if scale else worst
    DEVIATIONS.setdefault(fixture, {})[key] = (relative, used)
    print(f"golden {fixture} {key}: max |Δ| {worst:.2e} = {relative:.1e} of max|ref| {scale:.3g} "
          f"({used:.2f} of the tolerance)")
    if not used <= 1.0:  # also catches NaN
        at = tuple(int(i) for i in torch.nonzero(diff == diff.max())[0]) if worst == worst else "NaN"
        raise AssertionError(f"{fixture} {key}: max |Δ| {worst:.3e} at {at} exceeds the float32 tolerance "
                             f"{ULPS}·{depth}·eps·(max|ref| + |ref|) = {rtol * scale:.3e} + {rtol:.2e}·|ref| "
                             f"(max|ref| {scale:.3g}; {used:.1f}x the bound)")
    return used


def golden_dirs() -> list[Path]:
    """The fixture folders: ``VLPET_GOLDEN_DIR`` (one or more, os.pathsep-separated) or the defaults."""
    env = os.environ.get("VLPET_GOLDEN_DIR")
    return [Path(p) for p in env.split(os.pathsep) if p] if env else DEFAULT_DIRS


def fixture_names() -> list[str]:
    """``<folder>/<fixture>`` for every fixture (a sub-folder with a meta.json) of every golden folder."""
    return [f"{root.name}/{p.name}" for root in golden_dirs() if root.is_dir()
            for p in sorted(root.iterdir()) if (p / "meta.json").is_file()]


def is_vlpet(meta: dict) -> bool:
    return "--use_encoder_adapter_down_multihead" in meta["argv"]


class Fixture:
    def __init__(self, name: str):
        folder, fixture = name.rsplit("/", 1)
        self.name = name
        self.dir = next(root for root in golden_dirs() if root.name == folder) / fixture
        self.meta = json.loads((self.dir / "meta.json").read_text())
        self.inputs = load_file(str(self.dir / "inputs.safetensors"), device=DEVICE)
        self.outputs = load_file(str(self.dir / "outputs.safetensors"), device=DEVICE)

    def build(self):
        """Our model for the fixture's argv and tiny config, with the official weights loaded."""
        argv = [*self.meta["argv"], "--feat_dim", str(self.meta["feat_dim"])]
        parser = build_parser("golden", "")
        args = parser.parse_args(argv)
        model_cfg = model_config_from_args(args, explicit_dests(parser, argv))
        config = self.meta["config"]
        keys = _BART_ARCH if config["model_type"] == "bart" else _T5_ARCH
        arch = {k: config[k] for k in keys}
        arch["vocab_size"] = self.meta["vocab_rows_after_resize"]
        preset = "tiny-bart" if config["model_type"] == "bart" else "tiny-t5"
        model_cfg = ModelConfig(**{**vars(model_cfg), "backbone": preset, "pretrained": False, "arch": arch,
                                   "vocab_size": arch["vocab_size"]})
        torch.manual_seed(0)
        model = build_model(model_cfg, pet_config_from_args(args))
        load_official_state_dict(model, load_file(str(self.dir / "state_dict.safetensors"), device=DEVICE))
        return model.to(DEVICE).eval()

    def official_names(self, model, our_names) -> set[str]:
        """Map our parameter names to the official ones (pattern keys resolved against the fixture's names)."""
        table = official_key_table(model)
        known = list(self.meta["trainable_names"]) + list(self.meta["state_dict_aliases"])
        out = set()
        for name in our_names:
            spec = table[name]
            out.update([k for k in known if spec.fullmatch(k)][:1] if hasattr(spec, "fullmatch") else spec)
        return out

    def reference_grad(self, model, our_name: str) -> torch.Tensor:
        spec = official_key_table(model)[our_name]
        grads = {k[len("grad."):]: v for k, v in self.outputs.items() if k.startswith("grad.")}
        names = [k for k in grads if spec.fullmatch(k)][:1] if hasattr(spec, "fullmatch") else spec
        return torch.cat([grads[n] for n in names]) if len(names) > 1 else grads[names[0]]

    def vis(self):
        return self.inputs["vis_feats"], self.inputs["boxes"]

    @property
    def depth(self) -> int:
        return depth_of(self.meta["config"])

    def check(self, key: str, got: torch.Tensor, ref: torch.Tensor | None = None) -> float:
        """``check_close`` of ``got`` against the reference output ``key`` (or ``ref``)."""
        return check_close(self.name, key, got, self.outputs[key] if ref is None else ref, self.depth)


def task_losses(logits: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Every official loss a fixture records, computed from our logits."""
    return {
        "loss_vqa": losses.sample_mean_loss(logits, labels, scores) if scores is not None else None,
        "loss_gqa": losses.sample_mean_loss(logits, labels),
        "loss_nlvr": losses.sample_mean_loss(logits, labels),
        "loss_tvqa": losses.sample_mean_loss(logits, labels),
        "loss_tvc": losses.sample_mean_loss(logits, labels),
        "loss_caption": losses.token_mean_loss(logits, labels),
    }


def side_outputs(fx: Fixture, model) -> dict[str, torch.Tensor]:
    """LST's extra reference outputs (fixtures README §4.3), captured from our model; {} for other methods."""
    lm = model.lm
    if not hasattr(lm, "side_final_upsample"):
        return {}
    got: dict[str, torch.Tensor] = {}

    def keep(key: str, value: torch.Tensor) -> None:  # a hook that returns None leaves the output unchanged
        got.setdefault(key, value)

    hooks = [lm.side_final_upsample.register_forward_hook(lambda _m, i, _o: keep("decoder_last_side_hidden_state", i[0])),
             lm.decoder.register_forward_hook(lambda _m, _i, o: keep("decoder_last_hidden_state_backbone", o[0]))]
    feats, boxes = fx.vis()
    task = fx.meta["task_for_forward_outputs"]
    try:
        with torch.no_grad():
            model(fx.inputs["input_ids"], feats, boxes, labels=fx.inputs["target_ids"], task=task)
            encoded, _ = model.encode(fx.inputs["input_ids"], feats, boxes, task=task)
    finally:
        for h in hooks:
            h.remove()
    got["encoder_last_side_hidden_state"] = encoded.side_last_hidden_state
    got["encoder_side_attention_mask"] = encoded.side_attention_mask
    return got
