"""Find and read run folders: trainer runs and demo runs alike.

A run folder holds ``summary.json`` (written by the trainer and the demo) or, for older runs, ``config.json`` and
``metrics.jsonl`` (then the status is read off the metrics: a test record means finished, and the Params % off the
official ``Trainable param percentage`` line of ``log.txt``). Folders below a run folder are not searched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..train.summary import DEMO_BACKBONE, METRICS, SUMMARY, backbone_label, final_scores, read_metrics

METHOD_LABELS = {"full_finetuning": "Full Fine-tuning", "bitfit": "BitFit", "single_prompt": "Prompt Tuning",
                 "single_compacter": "Compacter", "hyperformer": "HyperFormer", "single_lora": "LoRA",
                 "single_adapter": "VL-Adapter", "lst": "LST", "mtl_lora": "MTL-LoRA"}
GATE_NAMES = {"small": "small", "middlex": "middleX", "middley": "middleY", "large": "large"}
# Keys of the resolved configuration that say where and how a run was kept, not what was trained: runs that differ
# only in these (and in their seed) are seeds of one configuration.
RUN_KEYS = frozenset({"seed", "output", "run_name", "resume", "no_progress", "wandb", "device", "num_workers",
                      "save_every_steps"})
PARAMS_LINE = re.compile(r"Trainable param percentage: [0-9.]+% \((\d+)/(\d+)\)")


@dataclass
class Run:
    """One run folder, as the report needs it."""

    path: str
    status: str  # finished, running, interrupted, failed; "incomplete" for an older folder without a test record
    seed: int | None
    method: str
    backbone: str
    family: str
    params_percent: float | None
    split: str  # the split of ``scores``: test, or val for runs whose test splits are unlabelled (video)
    scores: dict[str, float]
    from_val: list[str]
    epochs: int
    history: dict[int, dict[str, float]]  # epoch -> validation scores
    key: str  # the configuration without the seed and the RUN_KEYS (canonical JSON)
    wall_s: float | None = None
    error: str | None = None
    last_val: dict[str, float] = field(default_factory=dict)


def method_label(pet: dict) -> str:
    """The paper's name of a PET configuration: VL-PET-large, LoRA, VL-Adapter + G_large + LW (Table 9), ..."""
    if pet.get("method") == "peft":
        return peft_label(pet.get("peft") or {})
    gate = GATE_NAMES.get(pet.get("gate", "none"))
    if pet.get("method") == "vl-pet":
        return f"VL-PET-{gate}"
    base = METHOD_LABELS.get(pet.get("method"), str(pet.get("method")))
    return f"{base} + G_{gate} + LW" if gate else base


def peft_label(peft: dict) -> str:
    """A ``--peft_config`` run's method name: DoRA, PiSSA, rsLoRA, LoRA (peft), VeRA, (IA)³, AdaLoRA, ..."""
    kind = str(peft.get("peft_type", "peft")).upper()
    if kind == "LORA":
        if peft.get("use_dora"):
            return "DoRA"
        if str(peft.get("init_lora_weights", "")).lower().startswith("pissa"):
            return "PiSSA"
        return "rsLoRA" if peft.get("use_rslora") else "LoRA (peft)"
    return {"VERA": "VeRA", "IA3": "(IA)³", "ADALORA": "AdaLoRA"}.get(kind, kind)


def find_runs(roots: list[str]) -> list[Path]:
    """Every run folder at or below ``roots``, in a fixed (sorted) order; an unreadable root is an error."""
    found = []
    for root in roots:
        if not Path(root).is_dir():
            raise ValueError(f"{root}: no such folder")
        for folder, subdirs, files in os.walk(root):
            subdirs.sort()
            if SUMMARY in files or {"config.json", METRICS} <= set(files):
                found.append(Path(folder))
                subdirs.clear()
    return sorted(set(found), key=str)


def config_key(config: dict, run_dir: Path) -> str:
    """Canonical JSON of ``config`` without seeds and RUN_KEYS; paths inside the run folder become ``<run>/…`` so
    that the demo's data and backbone folders (one per run) compare equal."""

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in RUN_KEYS}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, str) and run_dir.name in Path(value).parts:
            parts = Path(value).parts
            last = len(parts) - 1 - parts[::-1].index(run_dir.name)
            return "/".join(("<run>", *parts[last + 1:]))
        return value

    return json.dumps(clean(config), sort_keys=True, default=str)


def read_run(run_dir: Path) -> Run:
    """A run folder (summary, or the older config + metrics + log) as a ``Run``."""
    records = read_metrics(run_dir / METRICS)
    try:
        summary = json.loads((run_dir / SUMMARY).read_text()) if (run_dir / SUMMARY).is_file() else None
        config = summary["config"] if summary else json.loads((run_dir / "config.json").read_text())
    except (ValueError, KeyError) as err:
        raise ValueError(f"{run_dir}: unreadable run files ({err})") from None
    summary = summary or _older_summary(run_dir, config, records)
    history = {r["epoch"]: r["val"] for r in records if "val" in r and "epoch" in r}
    return Run(path=str(run_dir), status=summary["status"], seed=summary.get("seed"),
               method=method_label(config.get("pet", {})), backbone=summary["backbone"], family=summary["family"],
               params_percent=(summary.get("params") or {}).get("percent"), split=summary.get("split", "test"),
               scores=summary.get("scores", {}), from_val=summary.get("from_val", []), epochs=len(history),
               history=dict(sorted(history.items())), key=config_key(config, run_dir),
               wall_s=summary.get("wall_s"), error=summary.get("error"),
               last_val=history[max(history)] if history else {})


def _older_summary(run_dir: Path, config: dict, records: list[dict]) -> dict:
    """What a summary would say, from an older run folder's config.json, metrics.jsonl and log.txt."""
    scores = final_scores(records)
    seed = config.get("args", config.get("demo", {})).get("seed")
    label, family = backbone_label(config.get("model", {}).get("backbone", "?"))
    log = run_dir / "log.txt"
    counts = PARAMS_LINE.search(log.read_text()) if log.is_file() else None
    params = {"percent": 100 * int(counts[1]) / int(counts[2])} if counts else None
    status = "finished" if any("test" in r for r in records) else "incomplete"
    return {**scores, "status": status, "seed": seed, "backbone": DEMO_BACKBONE if "demo" in config else label,
            "family": family, "params": params}


def short_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]
