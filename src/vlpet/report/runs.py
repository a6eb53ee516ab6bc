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

from ..train.summary import DEMO_BACKBONE, METRICS, SUMMARY, backbone_label, final_scores

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
    method = str(pet.get("method"))
    if method == "peft":
        peft = pet.get("peft")
        return peft_label(peft if isinstance(peft, dict) else {})
    gate = GATE_NAMES.get(str(pet.get("gate", "none")))
    if method == "vl-pet":
        return f"VL-PET-{gate}"
    base = METHOD_LABELS.get(method, method)
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


class UnreadableRun(ValueError):
    """A run folder whose files cannot be read as a run: the message names the file and what is wrong."""


STATUSES = ("finished", "running", "interrupted", "failed", "incomplete")


def read_run(run_dir: Path) -> Run:
    """A run folder (summary, or the older config + metrics + log) as a ``Run``; ``UnreadableRun`` naming the file
    when one is not what the trainer writes (not UTF-8, not JSON, or JSON of another shape)."""
    records = _records(run_dir / METRICS)
    if (run_dir / SUMMARY).is_file():
        path = run_dir / SUMMARY
        summary = _json_object(path)
        config = _field(summary, "config", dict, path)
        for key in ("status", "backbone", "family"):
            _field(summary, key, str, path)
    else:
        path = run_dir / "config.json"
        config = _json_object(path)
        summary = _older_summary(run_dir, config, records)
    _check_summary(summary, path)
    if not isinstance(config.get("pet", {}), dict):
        raise UnreadableRun(f"{path}: \"pet\" is a {type(config['pet']).__name__}, not an object")
    history = {r["epoch"]: r["val"] for r in records if "val" in r and "epoch" in r}
    return Run(path=str(run_dir), status=summary["status"], seed=summary.get("seed"),
               method=method_label(config.get("pet", {})), backbone=summary["backbone"], family=summary["family"],
               params_percent=(summary.get("params") or {}).get("percent"), split=summary.get("split", "test"),
               scores=summary.get("scores") or {}, from_val=summary.get("from_val") or [], epochs=len(history),
               history=dict(sorted(history.items())), key=config_key(config, run_dir),
               wall_s=summary.get("wall_s"), error=summary.get("error"),
               last_val=history[max(history)] if history else {})


def _json_object(path: Path) -> dict:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise UnreadableRun(f"{path}: not UTF-8 text (byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise UnreadableRun(f"{path}: not valid JSON ({err})") from None
    except OSError as err:
        raise UnreadableRun(f"{path}: cannot be read ({err.strerror or err})") from None
    if not isinstance(data, dict):
        raise UnreadableRun(f"{path}: holds a JSON {type(data).__name__}, not an object")
    return data


def _field(data: dict, key: str, kind, path: Path, optional: bool = False):
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        what = "missing" if key not in data else f"a {type(value).__name__}"
        raise UnreadableRun(f"{path}: \"{key}\" is {what}, expected {_kind_name(kind)}")
    return value


def _kind_name(kind) -> str:
    names = {dict: "an object", str: "a string", list: "a list", int: "an integer", float: "a number"}
    return " or ".join(names.get(k, k.__name__) for k in (kind if isinstance(kind, tuple) else (kind,)))


def _scores(value, what: str, path: Path) -> None:
    if not isinstance(value, dict) or not all(isinstance(k, str) and _is_number(v) for k, v in value.items()):
        raise UnreadableRun(f"{path}: {what} is not an object of task → number")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # not NaN


def _check_summary(summary: dict, path: Path) -> None:
    """What the report reads off a summary has the types the trainer writes."""
    status = summary["status"]
    if status not in STATUSES:
        raise UnreadableRun(f"{path}: unknown status {status!r} (expected one of {', '.join(STATUSES)})")
    _field(summary, "seed", int, path, optional=True)
    if summary.get("split", "test") not in ("test", "val"):
        raise UnreadableRun(f"{path}: unknown split {summary['split']!r} (expected test or val)")
    _scores(summary.get("scores") or {}, '"scores"', path)
    from_val = summary.get("from_val") or []
    if not isinstance(from_val, list) or not all(isinstance(t, str) for t in from_val):
        raise UnreadableRun(f"{path}: \"from_val\" is not a list of task names")
    params = _field(summary, "params", dict, path, optional=True) or {}
    if params.get("percent") is not None and not _is_number(params["percent"]):
        raise UnreadableRun(f"{path}: \"params\".\"percent\" is not a number")
    for key in ("wall_s",):
        if summary.get(key) is not None and not _is_number(summary[key]):
            raise UnreadableRun(f"{path}: \"{key}\" is not a number")
    if summary.get("error") is not None:
        summary["error"] = str(summary["error"])


def _records(path: Path) -> list[dict]:
    """The records of a run's metrics.jsonl, as ``read_metrics`` reads them (a truncated last line is skipped),
    each checked for what the report reads: an integer ``epoch``, ``val`` and ``test`` objects of scores."""
    if not path.is_file():
        return []
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise UnreadableRun(f"{path}: not UTF-8 text (byte {err.start}); a metrics.jsonl holds JSON lines") from None
    except OSError as err:
        raise UnreadableRun(f"{path}: cannot be read ({err.strerror or err})") from None
    records = []
    lines = text.splitlines()
    for n, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines) or not line.strip():  # a killed run's last line, or a blank one
                continue
            raise UnreadableRun(f"{path} line {n}: not valid JSON") from None
        if not isinstance(record, dict):
            raise UnreadableRun(f"{path} line {n}: a JSON {type(record).__name__}, not an object")
        if "epoch" in record and not (isinstance(record["epoch"], int) and not isinstance(record["epoch"], bool)):
            raise UnreadableRun(f"{path} line {n}: \"epoch\" is not an integer")
        for key in ("val", "test"):
            if key in record:
                _scores(record[key], f'line {n}: "{key}"', path)
        if record.get("test_predictions") is not None and not isinstance(record["test_predictions"], dict):
            raise UnreadableRun(f"{path} line {n}: \"test_predictions\" is not an object")
        records.append(record)
    return records


def _older_summary(run_dir: Path, config: dict, records: list[dict]) -> dict:
    """What a summary would say, from an older run folder's config.json, metrics.jsonl and log.txt."""
    scores = final_scores(records)
    args = config.get("args", config.get("demo", {}))
    seed = args.get("seed") if isinstance(args, dict) else None
    model = config.get("model", {})
    label, family = backbone_label(str(model.get("backbone", "?")) if isinstance(model, dict) else "?")
    log = run_dir / "log.txt"
    try:
        counts = PARAMS_LINE.search(log.read_bytes().decode("utf-8", "replace")) if log.is_file() else None
    except OSError:
        counts = None
    params = {"percent": 100 * int(counts[1]) / int(counts[2])} if counts and int(counts[2]) else None
    status = "finished" if any("test" in r for r in records) else "incomplete"
    return {**scores, "status": status, "seed": seed, "backbone": DEMO_BACKBONE if "demo" in config else label,
            "family": family, "params": params}


def read_runs(paths: list[Path], warn) -> list[Run]:
    """The readable runs of ``paths``; each unreadable folder is left out after ``warn(message)`` names it."""
    runs = []
    for path in paths:
        try:
            runs.append(read_run(path))
        except UnreadableRun as err:
            warn(f"warning: skipped run folder {path}: {err}")
        except (TypeError, KeyError, AttributeError, ValueError) as err:  # a shape no check above foresaw
            warn(f"warning: skipped run folder {path}: its files are not what the trainer writes "
                 f"({type(err).__name__}: {err})")
    return runs


def short_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]
