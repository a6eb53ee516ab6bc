"""Results that travel: a checkpoint as a folder in the Hugging Face Hub's conventions, its upload, and its use.

``export(RUN_DIR/LAST, OUT)`` writes::

    OUT/README.md                 model card: YAML metadata (base_model, library_name, tags, model-index with the
                                  run's scores, and a ``vlpet`` block: backbone, method, Params %, tasks, scores),
                                  the command line, the citation
    OUT/pet_weights.safetensors   the checkpoint's PET-only weights (what was trained), as trained
    OUT/pet_config.json           the checkpoint's config (``--load OUT`` / ``predict --checkpoint OUT`` read it)
    OUT/vlpet_config.json         the run's resolved config (model, pet, args)
    OUT/adapter_config.json       peft runs only: the tuner's PeftConfig (base_model_name_or_path = the backbone)
    OUT/adapter_model.safetensors peft runs only: peft's own adapter state dict (``PeftModel.save_pretrained``), plus
                                  the LM tensors DoRA's --unfreeze_bias / --unfreeze_layer_norms trained

so ``PeftModel.from_pretrained(<stock backbone>, OUT)`` gives the trained language model (the visual embedding,
a VL part, is in ``pet_weights.safetensors``). ``push`` uploads the same folder with ``huggingface_hub``;
``resolve`` turns a Hub repo id given to ``--load`` / ``predict`` into a local snapshot.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from .config import ModelConfig, PETConfig, from_dict
from .pet.official import CheckpointError

CITATION = """@inproceedings{hu2023vlpet,
  title     = {{VL-PET}: Vision-and-Language Parameter-Efficient Tuning via Granularity Control},
  author    = {Hu, Zi-Yuan and Li, Yanyang and Lyu, Michael R. and Wang, Liwei},
  booktitle = {Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
  year      = {2023}
}"""
DORA_CITATION = """@inproceedings{liu2024dora,
  title     = {{DoRA}: Weight-Decomposed Low-Rank Adaptation},
  author    = {Liu, Shih-Yang and Wang, Chien-Yi and Yin, Hongxu and Molchanov, Pavlo and Wang, Yu-Chiang Frank and
               Cheng, Kwang-Ting and Chen, Min-Hung},
  booktitle = {Proceedings of the 41st International Conference on Machine Learning (ICML)},
  year      = {2024}
}"""
TASK_NAMES = {"vqa": ("visual-question-answering", "VQAv2", "accuracy"),
              "gqa": ("visual-question-answering", "GQA", "accuracy"),
              "nlvr": ("visual-reasoning", "NLVR2", "accuracy"),
              "caption": ("image-to-text", "COCO Captions (Karpathy)", "CIDEr"),
              "tvqa": ("video-question-answering", "TVQA", "accuracy"),
              "how2qa": ("video-question-answering", "How2QA", "accuracy"),
              "tvc": ("video-to-text", "TVC", "CIDEr"), "yc2c": ("video-to-text", "YouCook2 captions", "CIDEr")}
README = "README.md"
RUN_CONFIG = "vlpet_config.json"


class ExportError(ValueError):
    """A checkpoint that cannot be exported, pushed or resolved (one line)."""


# ------------------------------------------------------------------------------------------------------ export
def export(source: Path, out: Path) -> Path:
    """Write the Hub folder of the checkpoint ``source`` (``RUN_DIR/LAST``, ``RUN_DIR/BEST`` or a run folder)."""
    from .predict import checkpoint_folder
    from .train.checkpoint import CONFIG, WEIGHTS, _verify, read_checkpoint_config

    ckpt = checkpoint_folder(Path(source))
    meta = read_checkpoint_config(ckpt)
    config = meta.get("config") or {}
    if not {"model", "pet", "args"} <= set(config):
        raise ExportError(f"{ckpt} was not written by the vlpet trainer (its config lacks model/pet/args)")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out} exists and is not empty; choose a new folder (nothing is overwritten)")
    model_cfg, pet_cfg = from_dict(ModelConfig, config["model"]), from_dict(PETConfig, config["pet"])
    _verify(ckpt)  # the files are the ones saved (sha256)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent if out.parent.exists() else None))
    try:
        shutil.copy2(ckpt / WEIGHTS, tmp / WEIGHTS)
        meta = {**meta, "sha256": {k: v for k, v in meta.get("sha256", {}).items() if k == WEIGHTS}}
        (tmp / CONFIG).write_text(json.dumps(meta, indent=1))
        (tmp / RUN_CONFIG).write_text(json.dumps(config, indent=1, default=str))
        if pet_cfg.method == "peft":
            write_peft_adapter(ckpt, model_cfg, pet_cfg, tmp)
        summary = _read_json(ckpt.parent / "summary.json")
        (tmp / README).write_text(model_card(config, summary, ckpt))
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def hub_backbone(backbone: str) -> str:
    """The backbone's hub id (a preset name maps to its id; anything else is kept)."""
    from .models.presets import PRESETS

    preset = PRESETS.get(backbone)
    return preset.hf_id if preset is not None and preset.hf_id else backbone


def write_peft_adapter(ckpt: Path, model_cfg: ModelConfig, pet_cfg: PETConfig, out: Path) -> None:
    """``adapter_config.json`` + ``adapter_model.safetensors`` as ``PeftModel.save_pretrained`` writes them, from
    the checkpoint's LM tensors: peft's own model is built on the stock backbone's structure, the trained tensors
    are loaded into it (names are the same: ``lm.<name>`` here, ``base_model.model.<name>`` there), peft saves it.
    Trained LM tensors peft does not own (DoRA's --unfreeze_bias / --unfreeze_layer_norms) are added under the same
    names; ``PeftModel.from_pretrained`` loads them into the backbone (it loads with strict=False)."""
    import torch
    from peft import get_peft_model
    from safetensors.torch import load_file, save_file

    from .models.presets import build_lm
    from .pet.peft_bridge import ADAPTER, build_peft_config
    from .train.checkpoint import TRAINER_STATE, WEIGHTS

    weights = load_file(str(ckpt / WEIGHTS))
    lm_weights = {"base_model.model." + k[len("lm."):]: v for k, v in weights.items() if k.startswith("lm.")}
    try:
        lm, _, _ = build_lm(model_cfg.backbone, pretrained=False, dropout=model_cfg.dropout, arch=model_cfg.arch)
    except ValueError:  # not a preset: a local folder (or a cached hub id) gives the structure
        lm, _, _ = build_lm(model_cfg.backbone, pretrained=True, dropout=model_cfg.dropout, arch=model_cfg.arch)
    config = build_peft_config(pet_cfg.peft)
    peft_model = get_peft_model(lm, config, adapter_name=ADAPTER)
    # set after get_peft_model, which overwrites it with the structure's name_or_path
    peft_model.peft_config[ADAPTER].base_model_name_or_path = hub_backbone(model_cfg.backbone)
    trainer = ckpt / TRAINER_STATE
    if trainer.is_file():  # AdaLoRA: the final rank pattern is in the trainer state
        pattern = ((torch.load(trainer, map_location="cpu", weights_only=True).get("state") or {}).get("tuner")
                   or {}).get("rank_pattern")
        if pattern:
            peft_model.peft_config[ADAPTER].rank_pattern = pattern
    adapter_names = {n for n, _ in peft_model.named_parameters()} | {n for n, _ in peft_model.named_buffers()}
    foreign = sorted(set(lm_weights) - adapter_names)
    if foreign:
        raise ExportError(f"{ckpt}: {len(foreign)} LM tensor(s) do not fit peft's {config.peft_type.value} model on "
                          f"the stock backbone (e.g. {foreign[0]})")
    peft_model.load_state_dict(lm_weights, strict=False)
    peft_model.save_pretrained(str(out))
    extra = _extra(lm_weights, peft_model)
    if extra:
        path = out / "adapter_model.safetensors"
        state = load_file(str(path))
        state.update({k: v.contiguous() for k, v in extra.items()})
        save_file(state, str(path), metadata={"format": "pt"})


def _extra(lm_weights: dict, peft_model) -> dict:
    """Trained LM tensors that are not the tuner's (biases, LayerNorms trained beside it)."""
    names = {n for n, _ in peft_model.named_parameters()}
    tuner_params = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    return {k: v for k, v in lm_weights.items() if k in names and k not in tuner_params}


# ------------------------------------------------------------------------------------------------------ card
def model_card(config: dict, summary: dict, ckpt: Path) -> str:
    """README.md: YAML metadata (``huggingface_hub.ModelCardData``) and a short text."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    model, pet, args = config["model"], config["pet"], config["args"]
    method = _method_name(pet)
    scores = summary.get("scores") or {}
    split = summary.get("split") or "test"
    params = summary.get("params") or {}
    tasks = [t for t in str(args.get("tasks") or "").split(",") if t] or sorted(scores)
    name = f"{hub_backbone(model['backbone']).split('/')[-1]}-{method}-{ckpt.parent.name}"
    named = {t: TASK_NAMES.get(t, ("other", t, "score")) for t in scores}
    results = [EvalResult(task_type=named[t][0], dataset_type=t, dataset_name=named[t][1], metric_type=named[t][2],
                          metric_value=float(v), dataset_split=split) for t, v in sorted(scores.items())]
    data = ModelCardData(
        base_model=hub_backbone(model["backbone"]), library_name="peft" if pet["method"] == "peft" else "vlpet",
        tags=["vlpet", "vision-language", "parameter-efficient-fine-tuning", method],
        model_name=name, eval_results=results or None,
        vlpet={"backbone": model["backbone"], "method": method,
               "params_percent": round(params["percent"], 4) if "percent" in params else None,
               "trainable_params": params.get("trainable"), "total_params": params.get("total"), "tasks": tasks,
               "scores": scores, "score_split": split, "seed": args.get("seed"), "epochs": args.get("epochs"),
               "batch_size": args.get("batch_size"), "checkpoint": ckpt.name, "status": summary.get("status")})
    pct = f"{params['percent']:.2f} %" if "percent" in params else "unknown (no summary.json)"
    table = "\n".join(f"| {t} | {scores[t]:.2f} |" for t in tasks if t in scores) or "| (no scores recorded) | |"
    citation = CITATION + ("\n\n" + DORA_CITATION if (pet.get("peft") or {}).get("use_dora") else "")
    usage = _usage(pet)
    text = f"""---
{data.to_yaml()}
---

# {name}

{method} on VL-{'BART' if 't5' not in model['backbone'].lower() else 'T5'} ({model['backbone']}), trained with vlpet, a
re-implementation of VL-PET ([HenryHZY/VL-PET](https://github.com/HenryHZY/VL-PET)), on {', '.join(tasks)}.
Trainable parameters: {pct}. Seed {args.get('seed')}, {args.get('epochs')} epochs, batch {args.get('batch_size')},
checkpoint `{ckpt.name}`.

| task | {split} score |
|---|---|
{table}

## Command line

```
{command_line(args)}
```

## Use

{usage}

## Citation

```bibtex
{citation}
```
"""
    return ModelCard(text).content


def _method_name(pet: dict) -> str:
    if pet["method"] == "peft":
        peft = pet.get("peft") or {}
        kind = str(peft.get("peft_type", "peft")).lower()
        return "dora" if peft.get("use_dora") else kind
    return pet["method"] if pet["method"] != "vl-pet" else f"vl-pet-{pet.get('gate', 'large')}"


def _usage(pet: dict) -> str:
    lines = ["```", "python -m vlpet predict --checkpoint THIS_FOLDER_OR_REPO_ID ...",
             "python -m vlpet train ... --load THIS_FOLDER_OR_REPO_ID --epochs 0   # test only", "```"]
    if pet["method"] == "peft":
        lines += ["", "The language model alone, with peft:", "", "```python",
                  "from peft import PeftModel", "from transformers import AutoModelForSeq2SeqLM",
                  "lm = PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(BASE), THIS_FOLDER_OR_REPO_ID)",
                  "```", "", "(BASE is `base_model` above; the visual embedding is in `pet_weights.safetensors`.)"]
    return "\n".join(lines)


def command_line(args: dict) -> str:
    """``python -m vlpet train`` with the run's flags that differ from the defaults (bookkeeping flags left out)."""
    from .flags.parse import make_parser

    parser = make_parser()
    defaults = {a.dest: a.default for a in parser._actions if a.option_strings}
    flags = {a.dest: a.option_strings[0] for a in parser._actions if a.option_strings}
    kinds = {a.dest: a.__class__.__name__ for a in parser._actions if a.option_strings}
    parts = ["python -m vlpet train"]
    for dest, value in args.items():
        if dest not in flags or dest in ("help", "datasets_root", "resume") or value == defaults.get(dest):
            continue
        if kinds[dest] == "_StoreTrueAction":
            parts.append(flags[dest])
        else:
            parts.append(f"{flags[dest]} {value}")
    return " \\\n    ".join(parts)


# ------------------------------------------------------------------------------------------------------ hub
def push(source: Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Export ``source`` to a temporary folder and upload it to the Hub repo ``repo_id`` (created if needed);
    returns the commit URL."""
    from huggingface_hub import HfApi

    with tempfile.TemporaryDirectory(prefix="vlpet-push-") as tmp:
        folder = export(source, Path(tmp) / "export")
        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder),
                                 commit_message=f"vlpet export of {Path(source)}")
    return str(getattr(info, "commit_url", info))


def looks_like_repo_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def resolve(name: str | Path) -> Path:
    """A local checkpoint folder as it is; a Hub repo id (``owner/name``, not a local path) downloaded (or taken
    from the local cache) with ``huggingface_hub.snapshot_download``."""
    path = Path(name)
    if path.exists() or Path(f"{name}.pth").exists() or not looks_like_repo_id(str(name)):
        return path  # a local folder or file (the official --load X means X or X.pth)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id=str(name)))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{name}: neither a local folder nor a downloadable Hub repo ({first})") from None
