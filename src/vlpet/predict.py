"""Prediction with a trained run (``python -m vlpet predict`` fronts it): answer a question, caption an image or judge an NLVR2 statement with a trained run.

Weights: the checkpoint's backbone (its ``config.json`` names the hub id or local directory; ``--backbone``
overrides) loaded with ``from_pretrained``, then the checkpoint's PET weights. A run trained ``--from_scratch``
(a random frozen backbone) is rebuilt from the run's seed, exactly as the trainer built it. Visual input: a
features file (``--features``: the official ``<img_id>.h5`` holding ``<img_id>/features``, or a ``.npy`` array,
either (49, feat_dim)) or a photo (``--image``) through the CLIP grid extractor ``vlpet.features.image``.
Prediction goes through the task's own official code (VQA/GQA greedy, captions with the run's beams, NLVR2 by the
true/false logits). ``--batch FILE.jsonl`` predicts many records and prints one JSON line each.
"""

from __future__ import annotations

import json
from pathlib import Path

IMAGE_TASKS = ("vqa", "gqa", "caption", "nlvr")
_TEXT_KEYS = ("question", "statement")


class PredictError(ValueError):
    """A user-facing problem with the inputs of ``predict``; the message names what is missing."""


# ----------------------------------------------------------------------------------------------------- inputs
def read_batch(path: Path) -> list[dict]:
    if not path.is_file():
        raise PredictError(f"--batch file not found: {path}")
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise PredictError(f"{path} line {n} is not JSON: {err}") from None
            if not isinstance(record, dict):
                raise PredictError(f"{path} line {n}: expected a JSON object")
            if "statement" in record and "question" not in record:
                record["question"] = record.pop("statement")
            records.append({**record, "line": n})
    if not records:
        raise PredictError(f"{path} holds no records")
    return records


def check_record(record: dict, task: str, source: Path | str | None = None) -> None:
    """The inputs ``task`` needs are all there and of the right JSON type (one visual source per image, given as
    a path string; a text where the task reads one); a problem is one ``PredictError`` naming the file and line."""
    where = (f"{source} " if source else "") + (f"line {record['line']}: " if "line" in record else "")
    for key in ("image", "features", "image2", "features2", "question", "id"):
        value = record.get(key)
        wanted = (str, int) if key == "id" else (str,)
        if value is not None and (not isinstance(value, wanted) or isinstance(value, bool)):
            what = "a string or a number" if key == "id" else ("a text" if key == "question" else "a file path string")
            shown = "statement" if key == "question" and task == "nlvr" else key
            raise PredictError(f"{where}{shown!r} must be {what}, got {type(value).__name__} {json.dumps(value)}")
    for n in ("", "2") if task == "nlvr" else ("",):
        sources = [key for key in (f"image{n}", f"features{n}") if record.get(key)]
        if len(sources) != 1:
            raise PredictError(f"{where}{task} needs exactly one of --image{n} / --features{n}"
                               + (f", got {' and '.join(sources)}" if sources else ""))
    if task != "caption" and not record.get("question"):
        what = "statement" if task == "nlvr" else "question"
        raise PredictError(f"{where}{task} needs a {what} (--question)")


class FeatureSource:
    """(49, F) float32 grids from a features file or, through the CLIP extractor (loaded once), from a photo."""

    def __init__(self, feat_dim: int, clip_weights: str | None, clip_pretrained: bool, device: str):
        self.feat_dim = feat_dim
        self.clip = dict(weights=clip_weights, pretrained=clip_pretrained, device=device)
        self._extractor = None

    def grids(self, records: list[dict], n: str):
        import torch

        return torch.stack([self.grid(record, n) for record in records])

    def grid(self, record: dict, n: str):
        import torch

        try:
            if record.get(f"features{n}"):
                return torch.from_numpy(read_features(Path(record[f"features{n}"]), self.feat_dim))
            return self.extract(Path(record[f"image{n}"]))
        except PredictError as err:
            if "line" not in record:
                raise
            raise PredictError(f"line {record['line']}: {err}") from None

    def extract(self, path: Path):
        from PIL import Image, UnidentifiedImageError

        if not path.is_file():
            raise PredictError(f"image not found: {path}")
        try:
            image = Image.open(path).convert("RGB")
        except (UnidentifiedImageError, OSError) as err:
            raise PredictError(f"cannot read image {path}: {err}") from None
        feats = self.extractor()([image])[0]
        if tuple(feats.shape) != (49, self.feat_dim):
            raise PredictError(f"the extractor gives features of shape {tuple(feats.shape)}, but the checkpoint's "
                               f"model reads (49, {self.feat_dim})")
        return feats.float().cpu()

    def extractor(self):
        if self._extractor is None:
            try:
                from .features.image import GridExtractor
            except ImportError:
                raise PredictError("--image needs the CLIP grid extractor (vlpet.features.image), which this "
                                   "installation lacks; pass --features FILE instead") from None
            if self.clip["weights"] is None and not self.clip["pretrained"]:
                raise PredictError("--image needs CLIP weights: pass --clip-weights FILE or --clip-pretrained")
            try:
                self._extractor = GridExtractor.load(**self.clip)
            except (OSError, ValueError) as err:
                raise PredictError(f"no CLIP weights: {str(err).splitlines()[0] if str(err) else err!r}") from None
        return self._extractor


def read_features(path: Path, feat_dim: int):
    """float32 (49, feat_dim) from ``<img_id>.h5`` (official layout) or a ``.npy`` array."""
    import numpy as np

    from .data.features import N_GRID, FeatureReader
    from .data.layout import DataError

    if not path.is_file():
        raise PredictError(f"features file not found: {path}")
    if path.suffix == ".npy":
        try:
            feats = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise PredictError(f"cannot read {path}: {err}") from None
        if feats.shape != (N_GRID, feat_dim):
            raise PredictError(f"{path} holds an array of shape {feats.shape}, expected ({N_GRID}, {feat_dim})")
        return feats.astype(np.float32)
    reader = FeatureReader(max_open=1, feat_dim=feat_dim)
    try:
        return reader.read(path, path.stem)
    except DataError as err:
        raise PredictError(str(err)) from None
    finally:
        reader.close()


# ----------------------------------------------------------------------------------------------------- model
def checkpoint_folder(path: Path) -> Path:
    """``path`` itself when it is a checkpoint; for a run folder its ``BEST``, else its ``LAST``."""
    from .train.checkpoint import CONFIG

    for candidate in (path, path / "BEST", path / "LAST"):
        if (candidate / CONFIG).is_file():
            return candidate
    return path  # read_checkpoint_config names what is missing


class Predictor:
    """The run's model, tokenizer, prompts and generation settings."""

    def __init__(self, model, tokenizer, run_args: dict, device):
        self.model, self.tokenizer, self.device = model.eval(), tokenizer, device
        self.run_args = run_args
        self.feat_dim = model.visual_embedding.feat_embedding[0].in_features

    @classmethod
    def load(cls, checkpoint: Path, backbone: str | None, tokenizer: str | None, device: str) -> Predictor:
        import torch

        from .config import ModelConfig, PETConfig, from_dict
        from .data.tokenizer import load_tokenizer
        from .models.presets import resolve_preset
        from .train.checkpoint import load_checkpoint, read_checkpoint_config

        config = read_checkpoint_config(checkpoint).get("config") or {}
        if not {"model", "pet", "args"} <= set(config):
            raise PredictError(f"{checkpoint} was not written by the vlpet trainer (its config lacks model/pet/args)")
        model_cfg, pet_cfg = from_dict(ModelConfig, config["model"]), from_dict(PETConfig, config["pet"])
        if backbone is not None:
            model_cfg = ModelConfig(**{**vars(model_cfg), "backbone": backbone, "pretrained": True})
        run_args = config["args"]
        if backbone is None:  # a run folder of an older version stored the path as typed, relative to its cwd
            model_cfg = ModelConfig(**{**vars(model_cfg), "backbone": stored_path(model_cfg.backbone, checkpoint)})
        preset = resolve_preset(model_cfg.backbone)
        stored_tok = run_args.get("tokenizer")
        tok_name = tokenizer or (stored_path(stored_tok, checkpoint) if stored_tok else None) or (
            preset.hf_id if preset and preset.hf_id else model_cfg.backbone)
        try:
            tok = load_tokenizer(tok_name)
        except (OSError, ValueError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise PredictError(f"no tokenizer {tok_name!r} (offline, or not a tokenizer): {first}; "
                               "pass --tokenizer DIR") from None
        model = build_backbone(model_cfg, pet_cfg, run_args.get("seed"))
        load_checkpoint(checkpoint, model)
        return cls(model.to(torch.device(device)), tok, run_args, torch.device(device))

    def predict(self, task: str, records: list[dict], features: FeatureSource) -> list:
        from .data.nlvr import ANSWERS
        from .tasks import get_task

        batch = self.batch(task, records, features)
        runner = get_task(task, self.run_args.get("num_beams", 5), self.run_args.get("gen_max_length", 20))
        out = runner.predict(self.model, [batch], self.tokenizer)
        return [ANSWERS[out[i]] if task == "nlvr" else out[i] for i in range(len(records))]

    def batch(self, task: str, records: list[dict], features: FeatureSource) -> dict:
        """A batch as the task's loader gives it: the official prompt and truncation, zero boxes, index keys."""
        import torch

        from .data import caption, gqa, vqa
        from .data.base import pad
        from .data.multitask import task_prompts

        prompt = task_prompts(self.run_args.get("use_tasks_prompts", True),
                              self.run_args.get("fix_gqa_prompt", False))[task]
        max_length = {"vqa": vqa.INPUT_MAX_LENGTH, "gqa": gqa.INPUT_MAX_LENGTH, "caption": caption.INPUT_MAX_LENGTH}
        texts = [prompt + (r.get("question") or "") for r in records]
        limit = max_length.get(task)  # NLVR2 statements are never truncated
        ids = [self.tokenizer.encode(t, max_length=limit, truncation=True) if limit else self.tokenizer.encode(t)
               for t in texts]
        grids = features.grids(records, "")
        if task == "nlvr":
            grids = torch.stack([grids, features.grids(records, "2")], dim=1)
        index = list(range(len(records)))
        batch = {"task": task, "input_ids": pad(ids, self.tokenizer.pad_token_id), "vis_feats": grids,
                 "boxes": torch.zeros(*grids.shape[:-1], 4), "question_ids": index, "img_ids": index,
                 "identifiers": index}
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def stored_path(value: str, checkpoint: Path) -> str:
    """A backbone or tokenizer path as the run stored it: as is when absolute, a local path here, or not a path
    (a hub id or preset); a relative path that is not found here is looked up against the checkpoint's folders
    (the run was started in one of them), e.g. ``snap/demo/<ts>/backbone`` of a run in ``<project>/snap/…``."""
    path = Path(value)
    if path.is_absolute() or path.exists() or len(path.parts) < 2:
        return value
    for folder in Path(checkpoint).resolve().parents:
        if (folder / path).exists():
            return str(folder / path)
    return value


def build_backbone(model_cfg, pet_cfg, seed: int | None):
    """The run's model before its PET weights: pretrained weights, or the run's seeded random backbone."""
    from .models.build import build_model

    if not model_cfg.pretrained:
        if seed is None:
            raise PredictError("the run trained a random (--from_scratch) backbone but its config has no seed; "
                               "pass --backbone with the backbone weights")
        from .train.main import seed_everything

        seed_everything(int(seed))
    try:
        return build_model(model_cfg, pet_cfg)
    except OSError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise PredictError(f"no backbone weights for {model_cfg.backbone!r}: not a local directory and not in the "
                           f"Hugging Face cache (offline?); download it or pass --backbone DIR ({first})") from None
