"""Any ``huggingface/peft`` tuner as a VL baseline (``--peft_config PATH``): DoRA, LoRA, rsLoRA, PiSSA, VeRA, (IA)³,
AdaLoRA, ... applied by peft itself to the stock language model inside the VL model.

* The tuner is peft's own (``PEFT_TYPE_TO_TUNER_MAPPING``), injected in place into ``model.lm`` as
  ``inject_adapter_in_model`` does: ``model.lm`` stays the stock HF module tree (its Linears become peft layers),
  so our encoder ([text; visual] tokens), beam search, checkpoints and DDP see an ordinary module. The tuner object
  (needed by AdaLoRA's rank schedule) is kept beside the model, not registered as a submodule.
* Trainable: what peft marks trainable in the LM (``peft_config.bias`` included), the visual embedding (as in every
  VL baseline; ``--freeze_vis_emb`` turns it off), and, as in DoRA's VL-BART script (NVlabs/DoRA,
  ``image_video_text_understanding/VL-T5/src/trainer_base.py``): ``--unfreeze_bias`` every bias of the model's
  Linear and LayerNorm layers (stock T5 has none; T5's ``relative_attention_bias``, which DoRA's substring match
  would catch, is an embedding and stays frozen), ``--unfreeze_layer_norms`` every LayerNorm (weight and bias) of
  the LM and of the visual embedding.
* AdaLoRA: ``total_step`` absent or null in the file means the run's number of optimizer steps; its orthogonal
  regulariser (peft adds it in ``AdaLoraModel.forward``, which our encoder bypasses) is added to the loss here, and
  ``update_and_allocate`` runs after every optimizer step (``TunerHooks``); the rank allocator's state travels in the
  trainer checkpoint so that ``--resume`` is bit-equal.
* Methods peft does not inject into a module tree (prompt learning: prefix / prompt / p-tuning; adaption prompt)
  are one error naming why.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .bitfit import unfreeze_biases
from .trainable import freeze_all, unfreeze_all_layer_norms, unfreeze_visual_embedding

ADAPTER = "default"
CONFIG_NAME = "adapter_config.json"
EXTRAS = ("unfreeze_bias", "unfreeze_layer_norms")


class PeftConfigError(ValueError):
    """A ``--peft_config`` that cannot be read or applied (one line)."""


def pet_config(path: str | Path, unfreeze_bias: bool = False, unfreeze_layer_norms: bool = False,
               train_visual_embedding: bool = True):
    """The ``PETConfig`` of a ``--peft_config`` run; a switch is on when the flag or the file's ``_vlpet`` sets it."""
    from ..config import PETConfig

    data, extras = read_peft_config(path)
    return PETConfig(method="peft", gate="none", peft=data,
                     unfreeze_bias=unfreeze_bias or extras.get("unfreeze_bias", False),
                     unfreeze_layer_norms=unfreeze_layer_norms or extras.get("unfreeze_layer_norms", False),
                     train_visual_embedding=train_visual_embedding)


def read_peft_config(path: str | Path) -> tuple[dict, dict]:
    """``(peft config dict, vlpet extras)`` of ``PATH`` (an ``adapter_config.json`` or the folder holding one),
    checked by peft. The extras are an optional ``"_vlpet"`` object with DoRA's two switches (``unfreeze_bias``,
    ``unfreeze_layer_norms``), so that one file is a whole recipe; other ``"_..."`` keys are comments."""
    path = Path(path)
    file = path / CONFIG_NAME if path.is_dir() else path
    if not file.is_file():
        raise PeftConfigError(f"--peft_config {path}: no such file (an {CONFIG_NAME} as PeftConfig.save_pretrained "
                              "writes it, or its folder)")
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PeftConfigError(f"--peft_config {file}: not a JSON file ({err})") from None
    if not isinstance(data, dict):
        raise PeftConfigError(f"--peft_config {file}: expected a JSON object, got {type(data).__name__}")
    extras = data.get("_vlpet") or {}
    unknown = sorted(set(extras) - set(EXTRAS)) if isinstance(extras, dict) else ["(not an object)"]
    if unknown:
        raise PeftConfigError(f"--peft_config {file}: \"_vlpet\" holds {', '.join(unknown)}; it may hold only "
                              f"{', '.join(EXTRAS)} (true/false)")
    data = {k: v for k, v in data.items() if not k.startswith("_") and k != "runtime_config"}
    build_peft_config(data, where=str(file))  # fail now, with the file's name
    return data, {k: bool(v) for k, v in extras.items()}


def build_peft_config(data: dict, total_steps: int | None = None, where: str = "--peft_config"):
    """The ``PeftConfig`` of ``data`` (``total_steps`` fills AdaLoRA's missing ``total_step``)."""
    from peft import PeftConfig
    from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING

    data = dict(data)
    peft_type = str(data.get("peft_type", "")).upper()
    if not peft_type:
        raise PeftConfigError(f"{where}: no \"peft_type\" (e.g. \"LORA\", \"VERA\", \"IA3\", \"ADALORA\")")
    data["inference_mode"] = False  # a saved adapter's config says True: peft would then freeze what we train
    if peft_type == "ADALORA" and not data.get("total_step"):
        data["total_step"] = total_steps or max(1000, data.get("tinit", 0) + data.get("tfinal", 0) + 1)
    try:
        config = PeftConfig.from_peft_type(**data)
    except (TypeError, ValueError, KeyError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PeftConfigError(f"{where}: peft rejects this {peft_type} config: {first}") from None
    if config.is_prompt_learning or config.is_adaption_prompt:
        raise PeftConfigError(
            f"{where}: {peft_type} is a prompt-learning method; peft applies it only through PeftModel's forward "
            "(virtual tokens or past_key_values fed to the whole model), which never reaches the encoder layers our "
            "VL encoder runs on [text; visual] tokens. Use --encoder_prompt_len (single_prompt) for prompt tuning")
    if config.peft_type not in PEFT_TYPE_TO_TUNER_MAPPING:
        raise PeftConfigError(f"{where}: peft has no in-place tuner for {peft_type}")
    return config


def for_run(cfg, total_steps: int):
    """``cfg`` with AdaLoRA's missing ``total_step`` set to the run's optimizer steps (recorded in config.json)."""
    if cfg.method != "peft" or str(cfg.peft.get("peft_type", "")).upper() != "ADALORA" or cfg.peft.get("total_step"):
        return cfg
    return type(cfg)(**{**vars(cfg), "peft": {**cfg.peft, "total_step": total_steps}})


def apply_peft(model, cfg) -> list[str]:
    """Inject ``cfg.peft`` (a peft config dict) into ``model.lm`` with peft's tuner; set the trainable set."""
    from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING

    if not cfg.peft:
        raise PeftConfigError("method 'peft' needs a peft config (--peft_config PATH)")
    config = build_peft_config(cfg.peft)
    on_meta = any(p.is_meta for p in model.parameters())
    freeze_all(model)
    tuner_cls = PEFT_TYPE_TO_TUNER_MAPPING[config.peft_type]
    try:
        # on the meta device (counting), peft creates the tuner's tensors empty instead of initialising them
        tuner = tuner_cls(model.lm, config, adapter_name=ADAPTER, low_cpu_mem_usage=on_meta)
    except ValueError as err:  # e.g. no target module matched
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PeftConfigError(f"--peft_config: peft cannot apply {config.peft_type.value} to this "
                              f"{model.kind.upper()} model: {first}") from None
    object.__setattr__(model, "peft_tuner", tuner)  # not a submodule: parameter names stay lm.<stock name>
    if cfg.unfreeze_bias:
        unfreeze_biases(model)
    if cfg.unfreeze_layer_norms:
        unfreeze_all_layer_norms(model)
    if cfg.train_visual_embedding:
        unfreeze_visual_embedding(model)
    return sorted(tuner.targeted_module_names)


def tuner_of(model):
    """The peft tuner of a model built with ``--peft_config`` (None otherwise); DDP / compile wrappers unwrapped."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return getattr(model, "peft_tuner", None)


def trainable_parts(model) -> dict[str, dict[str, int]]:
    """``{part: {"trainable", "total"}}``: the language model as peft counts it (``PeftModel.
    get_nb_trainable_parameters``, which only walks ``named_parameters``, run on the LM), the visual embedding,
    and the rest of the VL model (nothing, unless a method adds modules outside the LM)."""
    from peft.peft_model import PeftModel

    lm_trainable, lm_total = PeftModel.get_nb_trainable_parameters(model.lm)
    vis = list(model.visual_embedding.parameters())
    seen = {id(p) for p in model.lm.parameters()} | {id(p) for p in vis}
    rest = [p for p in model.parameters() if id(p) not in seen]
    count = lambda ps: {"trainable": sum(p.numel() for p in ps if p.requires_grad),  # noqa: E731
                        "total": sum(p.numel() for p in ps)}
    return {"lm (peft)": {"trainable": lm_trainable, "total": lm_total}, "visual_embedding": count(vis),
            "other": count(rest)}


def parts_line(parts: dict[str, dict[str, int]]) -> str:
    return "trainable by part: " + ", ".join(f"{name} {v['trainable']}/{v['total']}" for name, v in parts.items())


# ------------------------------------------------------------------------------------------------ AdaLoRA hooks
class TunerHooks:
    """What a tuner needs from the train loop: ``loss(loss)`` before backward and ``after_step(step)`` after the
    optimizer step, before the gradients are cleared. Only AdaLoRA needs either."""

    def __init__(self, tuner):
        self.tuner = tuner
        self.config = tuner.peft_config[ADAPTER]

    def loss(self, loss: torch.Tensor) -> torch.Tensor:
        """peft's ``AdaLoraModel.forward``: loss + orth_reg_weight · mean ‖P Pᵀ − I‖_F over every lora_A / lora_B."""
        weight = self.config.orth_reg_weight
        if weight <= 0:
            return loss
        total, n = 0, 0
        for name, p in self.tuner.model.named_parameters():
            if ("lora_A" in name or "lora_B" in name) and ADAPTER in name:
                cov = p @ p.T if "lora_A" in name else p.T @ p
                total = total + torch.norm(cov - torch.eye(*cov.shape, dtype=cov.dtype, device=cov.device), p="fro")
                n += 1
        return loss + weight * total / n if n else loss

    def after_step(self, step: int) -> None:
        """The rank schedule at optimizer step ``step`` (0-based: the update just taken)."""
        self.tuner.update_and_allocate(step)

    def state(self) -> dict:
        """The rank allocator's running importance estimates and the rank pattern (for a bit-equal resume)."""
        ra = self.tuner.rankallocator
        cpu = lambda d: {k: v.detach().cpu().clone() for k, v in d.items()}  # noqa: E731
        pattern = self.config.rank_pattern
        return {"ipt": cpu(ra.ipt), "exp_avg_ipt": cpu(ra.exp_avg_ipt), "exp_avg_unc": cpu(ra.exp_avg_unc),
                "rank_pattern": None if pattern is None else {k: [bool(x) for x in v] for k, v in pattern.items()}}

    def restore(self, state: dict | None) -> None:
        if not state:
            return
        ra = self.tuner.rankallocator
        device = next(self.tuner.model.parameters()).device
        for key in ("ipt", "exp_avg_ipt", "exp_avg_unc"):
            getattr(ra, key).clear()
            getattr(ra, key).update({k: v.to(device) for k, v in state[key].items()})
        self.config.rank_pattern = state["rank_pattern"]


def tuner_hooks(model) -> TunerHooks | None:
    """The loop hooks of ``model``'s tuner, or None when it needs none (every tuner but AdaLoRA)."""
    tuner = tuner_of(model)
    return TunerHooks(tuner) if tuner is not None and hasattr(tuner, "update_and_allocate") else None
