"""Video-text data in the VALUE release layout: TVQA, How2QA (multiple-choice QA) and TVC, YC2C (captioning).

Layout under ``<datasets root>/video/`` (pipeline spec §1.4; file names are VALUE's)::

    ann/tv_subtitles.jsonl                       subtitles of the TV videos (TVQA and TVC)
    ann/how2_subtitles.jsonl                     subtitles of the How2 videos (How2QA)
    ann/yc2_subtitles.jsonl                      subtitles of the YouCook2 videos (YC2C)
    ann/tvqa/tvqa_<split>.jsonl                  train, val, test_public, test_release
    ann/how2qa/how2qa_<split>.jsonl              train_release, val_release, test_public_release
    ann/tvc/tvc_<split>.jsonl                    train_release, val_release, test_release
    ann/yc2c/yc2c_<split>.jsonl                  train_release, val_release, test_release
    vis_features/{tv,how2,yc2}/clip-vit/<vid_name>.npz   key "features", (T, 512) CLIP-ViT frame features

How an example becomes model input, as the official ``src/video/*_data.py`` build it (§2.5-§2.7, §9 items 7-9):

* Subtitles: every line of the whole video, ``text.strip()``, joined by spaces, after ``"[Subs] "``.
* TVQA/How2QA text: ``"[Subs] <subs> [Q] <q> [TS] (<ts>) [Choices] a0: <a0>. a1: <a1>. ..."`` (5 choices for TVQA,
  4 for How2QA, each choice stripped of '.' and ' ' at both ends), then ``" " + prompt`` (the prompt goes *last*).
  The target is the string ``"a<answer_idx>"``.
* TVC text: ``"[Subs] <subs> [TS] (<ts>) " + prompt`` where ``ts`` is a list and prints as ``[35.73, 40.9]``;
  TVQA's ``ts`` is a string and prints as given. YC2C: ``"[Subs] <subs> " + prompt`` (no TS). One example per
  (clip, description) wherever ``descs`` exist (val included), the description as target; test clips (no ``descs``)
  give one example per clip keyed by ``clip_id``.
* Input: ``encode(text, max_length=600, truncation=True)``, cut from the right (keeping the closing ``</s>``), so long
  subtitles can push out the question, the choices and the prompt. Targets: at most 20 tokens.
* Features: the whole clip (``ts`` never crops them), resized on the time axis to 64 rows: zero rows appended when
  T < 64 (no mask hides them), 1-D adaptive max pooling when T > 64. The official How2QA resize lacks the batch
  dimension the other three have; here every task uses the 3-D form (§9 item 7, a recorded decision: on current
  torch both forms give the same numbers).

Batch dict (``collate``), like the image-text loaders: ``task``; ``input_ids`` (B, L) padded with pad;
``target_ids`` (B, T) with -100 at padding (labelled splits only); ``vis_feats`` float32 (B, 64, 512); ``boxes``
float32 zeros (B, 64, 4); and the lists ``question_ids`` (qid for QA, ``desc_id`` for labelled captions, ``clip_id``
for test captions), ``video_ids``, ``types`` (show name for TVQA, "how2qa", TVC's desc type, "yc2c"), ``sents``
(the text before the prompt), ``answers`` ("a<k>" or the description; labelled splits only), and for captions
``clip_ids`` and (TVC) ``tss``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .base import collate_examples
from .layout import DataError, field, require, resolve_root
from .multitask import MultitaskLoader, make_loader

TASKS = ("tvqa", "how2qa", "tvc", "yc2c")
QA_TASKS = ("tvqa", "how2qa")
CAPTION_TASKS = ("tvc", "yc2c")
PROMPTS = {"tvqa": "tvqa: ", "how2qa": "how2qa: ", "tvc": "tvc: ", "yc2c": "yc2c: "}
N_FRAMES = 64
FEAT_DIM = 512
INPUT_MAX_LENGTH = 600
TARGET_MAX_LENGTH = 20
N_CHOICES = {"tvqa": 5, "how2qa": 4}
# Splits of the published multitask run (§1.5); the test splits are unlabelled.
SPLITS = {
    "train": {"tvqa": "train", "how2qa": "train_release", "tvc": "train_release", "yc2c": "train_release"},
    "val": {"tvqa": "val", "how2qa": "val_release", "tvc": "val_release", "yc2c": "val_release"},
    "test": {"tvqa": "test_public,test_release", "how2qa": "test_public_release", "tvc": "test_release",
             "yc2c": "test_release"},
}
# task -> (video source folder / subtitle prefix, annotation folder)
SOURCES = {"tvqa": ("tv", "tvqa"), "how2qa": ("how2", "how2qa"), "tvc": ("tv", "tvc"), "yc2c": ("yc2", "yc2c")}
FEATURE_KIND = "clip-vit"
VIDEO_FOLDER = "video"


def resolve_video_root(root: str | Path | None = None) -> Path:
    """The datasets root holding ``video/``: ``root`` if given, else the first candidate of
    ``layout.root_candidates()`` (./datasets, ../datasets, <repo>/datasets, <repo>/../datasets) that has ``video/``."""
    return resolve_root(root, holds=lambda path: (path / VIDEO_FOLDER).is_dir(),
                        wanted=f"a folder with '{VIDEO_FOLDER}/'")


class VideoLayout:
    """Paths of the VALUE video tree under ``<root>/video``."""

    def __init__(self, root: str | Path | None = None):
        self.root = resolve_video_root(root)
        self.video = self.root / VIDEO_FOLDER

    def subtitles(self, task: str) -> Path:
        """``ann/{tv,how2,yc2}_subtitles.jsonl`` of the task's videos."""
        return self.video / "ann" / f"{SOURCES[task][0]}_subtitles.jsonl"

    def annotation(self, task: str, split: str) -> Path:
        """``ann/<task>/<task>_<split>.jsonl`` (one split name, no commas)."""
        folder = SOURCES[task][1]
        return self.video / "ann" / folder / f"{folder}_{split}.jsonl"

    def features(self, task: str) -> Path:
        """Folder of the task's per-video ``.npz`` files: ``vis_features/{tv,how2,yc2}/clip-vit``."""
        return self.video / "vis_features" / SOURCES[task][0] / FEATURE_KIND

    def feature_file(self, task: str, vid_name: str) -> Path:
        """``<features folder>/<vid_name>.npz``."""
        return self.features(task) / f"{vid_name}.npz"


def read_jsonl(path: Path, what: str) -> list[dict]:
    """Entries of a JSON-lines file (blank lines skipped); a missing or malformed file raises a DataError naming it."""
    require(path, what)
    entries = []
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except ValueError as err:
                    raise DataError(f"cannot read {what} {path}: line {number}: {err}", path) from err
                if not isinstance(entry, dict):
                    raise DataError(f"{path}: line {number} is not a JSON object", path)
                entries.append(entry)
    except OSError as err:
        raise DataError(f"cannot read {what} {path}: {err}", path) from err
    return entries


def load_subtitles(path: Path) -> dict[str, list[str]]:
    """``vid_name`` -> the raw ``text`` of each subtitle line (a later line for the same video replaces an earlier
    one, as the official dict does)."""
    subtitles = {}
    for index, entry in enumerate(read_jsonl(path, "subtitle file")):
        lines = field(entry, "sub", path, index)
        subtitles[field(entry, "vid_name", path, index)] = [field(line, "text", path, index) for line in lines]
    return subtitles


def subtitle_text(lines: list[str]) -> str:
    """``"[Subs] " + " ".join(text.strip() ...)`` over every subtitle line of the video."""
    return "[Subs] " + " ".join(text.strip() for text in lines)


def qa_text(subs: str, datum: dict, n_choices: int) -> str:
    """TVQA/How2QA text before the prompt: subtitles, ``[Q]``, ``[TS] (<ts>)`` and ``[Choices] a0: ...``."""
    choices = " ".join(f"a{k}: {datum[f'a{k}'].strip('. ')}." for k in range(n_choices))
    return " ".join([subs, f"[Q] {datum['q'].strip()}", f"[TS] ({datum['ts']})", f"[Choices] {choices}"])


def caption_text(subs: str, ts: Any = None, use_ts: bool = True) -> str:
    """TVC text before the prompt: subtitles then ``[TS] (<ts>)`` (a list prints as ``[s, e]``); YC2C: subtitles."""
    return " ".join([subs, f"[TS] ({ts})"]) if use_ts else subs


def resize_frames(feats, length: int = N_FRAMES) -> torch.Tensor:
    """float32 (length, D): zero rows appended if T < length, 1-D adaptive max pooling over time if T > length."""
    feats = torch.as_tensor(np.asarray(feats)).float()
    n, dim = feats.shape
    if n < length:
        return torch.cat([feats, torch.zeros(length - n, dim)], dim=0)
    if n > length:
        return F.adaptive_max_pool1d(feats.t().unsqueeze(0), length).squeeze(0).t().contiguous()
    return feats


def read_video_features(path: Path, vid_name: str) -> np.ndarray:
    """The (T, D) ``features`` array of one ``.npz`` file; any problem raises a DataError naming the file."""
    if not path.is_file():
        raise DataError(f"missing video feature file for video {vid_name}: {path}", path)
    try:
        with np.load(path) as npz:
            if "features" not in npz:
                raise DataError(f"{path}: no 'features' array (has {sorted(npz.files)})", path)
            feats = npz["features"]
    except DataError:
        raise
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read video feature file {path}: {err}", path) from err
    if feats.ndim != 2 or feats.shape[0] == 0:
        raise DataError(f"{path}: 'features' must have shape (T, D) with T >= 1, got {feats.shape}", path)
    return feats


class VideoDataset(Dataset):
    """Base of the four video datasets. ``split`` may list several splits separated by commas (concatenated).

    ``limit`` keeps the first ``limit`` examples (the official ``topk``); ``n_frames`` is ``--n_boxes`` (64).
    """

    task = ""

    def __init__(self, layout: VideoLayout, split: str, tokenizer, prompt: str | None = None,
                 limit: int | None = None, n_frames: int = N_FRAMES):
        self.layout = layout
        self.split = split
        self.tokenizer = tokenizer
        self.prompt = PROMPTS[self.task] if prompt is None else prompt
        self.n_frames = n_frames
        self.subtitles_path = layout.subtitles(self.task)
        self.subtitles = load_subtitles(self.subtitles_path)
        self.folder = require(layout.features(self.task), f"{self.task} video-feature folder")
        records = []
        self.sources = [layout.annotation(self.task, source) for source in split.split(",")]
        for path in self.sources:
            for index, entry in enumerate(read_jsonl(path, f"{self.task} annotation file")):
                records += self._records(entry, path, index)
        for record in records:
            if record["vid_name"] not in self.subtitles:
                raise DataError(f"video {record['vid_name']} of {record['source']} has no subtitle entry in "
                                f"{self.subtitles_path}", self.subtitles_path)
        self.data = records if limit is None else records[:limit]

    def _records(self, entry: dict, path: Path, index: int) -> list[dict]:
        raise NotImplementedError

    def _text(self, datum: dict, subs: str) -> str:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.data)

    def encode(self, text: str, max_length: int) -> list[int]:
        """Token ids with the tokenizer's specials, truncated from the right to ``max_length``."""
        return self.tokenizer.encode(text, max_length=max_length, truncation=True)

    def text(self, datum: dict) -> str:
        """The text before the prompt (the official ``sent``)."""
        return self._text(datum, subtitle_text(self.subtitles[datum["vid_name"]]))

    def features(self, vid_name: str) -> torch.Tensor:
        """float32 (n_frames, D) features of one video."""
        return resize_frames(read_video_features(self.layout.feature_file(self.task, vid_name), vid_name),
                             self.n_frames)

    def __getitem__(self, index: int) -> dict:
        datum = self.data[index]
        sent = self.text(datum)
        example = {
            "input_ids": self.encode(f"{sent} {self.prompt}", INPUT_MAX_LENGTH),
            "vis_feats": self.features(datum["vid_name"]),
            "meta": {"question_ids": datum["question_id"], "video_ids": datum["vid_name"], "types": datum["type"],
                     "sents": sent},
        }
        self._meta(datum, example["meta"])
        if "answer" in datum:
            example["target_ids"] = self.encode(datum["answer"], TARGET_MAX_LENGTH)
            example["meta"]["answers"] = datum["answer"]
        return example

    def _meta(self, datum: dict, meta: dict) -> None:
        """Hook for task-specific metadata."""

    def collate(self, batch: list[dict]) -> dict:
        """The batch dict described in the module docstring."""
        return collate_examples(batch, self.task, self.tokenizer.pad_token_id)

    @property
    def labelled(self) -> bool:
        """Whether the examples have targets (train/val) or not (test)."""
        return bool(self.data) and "answer" in self.data[0]


class VideoQADataset(VideoDataset):
    """Multiple-choice QA posed as generating the choice label "a<k>" (TVQA, How2QA)."""

    def _type(self, entry: dict, path: Path, index: int) -> str:
        return self.task

    def _records(self, entry: dict, path: Path, index: int) -> list[dict]:
        keys = ["vid_name", "qid", "q", "ts"] + [f"a{k}" for k in range(N_CHOICES[self.task])]
        record = {key: field(entry, key, path, index) for key in keys}
        record.update(question_id=record["qid"], type=self._type(entry, path, index), source=str(path))
        if "answer_idx" in entry:
            record["answer"] = f"a{entry['answer_idx']}"
        return [record]

    def _text(self, datum: dict, subs: str) -> str:
        return qa_text(subs, datum, N_CHOICES[self.task])

    def ground_truth(self) -> tuple[dict, dict]:
        """({question_id: "a<k>"}, {question_id: type}) of a labelled split, for ``metrics.video.score_video_qa``."""
        return ({d["question_id"]: d["answer"] for d in self.data if "answer" in d},
                {d["question_id"]: d["type"] for d in self.data})


class TVQADataset(VideoQADataset):
    """TVQA: 5 choices, ``ts`` a string, type = ``show_name``."""

    task = "tvqa"

    def _type(self, entry: dict, path: Path, index: int) -> str:
        return field(entry, "show_name", path, index)


class How2QADataset(VideoQADataset):
    """How2QA: 4 choices, type forced to "how2qa"."""

    task = "how2qa"


class VideoCaptionDataset(VideoDataset):
    """Captioning: one example per (clip, description); test clips without ``descs`` give one example each."""

    use_ts = True

    def _records(self, entry: dict, path: Path, index: int) -> list[dict]:
        base = {"vid_name": field(entry, "vid_name", path, index), "clip_id": entry.get("clip_id"),
                "source": str(path)}
        if self.use_ts:
            base["ts"] = field(entry, "ts", path, index)
        if "descs" not in entry:
            return [dict(base, question_id=field(entry, "clip_id", path, index), type=self.task)]
        return [dict(base, answer=field(desc, "desc", path, index), question_id=field(desc, "desc_id", path, index),
                     type=self._desc_type(desc, path, index))
                for desc in entry["descs"]]

    def _desc_type(self, desc: dict, path: Path, index: int) -> str:
        return self.task

    def _text(self, datum: dict, subs: str) -> str:
        return caption_text(subs, datum.get("ts"), self.use_ts)

    def _meta(self, datum: dict, meta: dict) -> None:
        meta["clip_ids"] = datum["clip_id"]
        if self.use_ts:
            meta["tss"] = datum["ts"]

    def ground_truth(self) -> list[str]:
        """The single reference of each example, in dataset order (the official validation pairs each decoded
        example with its own description)."""
        return [d["answer"] for d in self.data]


class TVCDataset(VideoCaptionDataset):
    """TVC: ``[TS] ([s, e])`` in the text; type = the description's ``type``."""

    task = "tvc"

    def _desc_type(self, desc: dict, path: Path, index: int) -> str:
        return field(desc, "type", path, index)


class YC2CDataset(VideoCaptionDataset):
    """YC2C: no TS in the text (``ts`` ignored)."""

    task = "yc2c"
    use_ts = False


DATASETS = {"tvqa": TVQADataset, "how2qa": How2QADataset, "tvc": TVCDataset, "yc2c": YC2CDataset}


def video_task_prompts(use_task_prompts: bool = True) -> dict[str, str]:
    """"tvqa: ", "how2qa: ", "tvc: ", "yc2c: " (``--use_tasks_prompts``), else all empty."""
    return dict(PROMPTS) if use_task_prompts else dict.fromkeys(PROMPTS, "")


def parse_tasks(tasks: str | tuple | list = TASKS) -> list[str]:
    """The task list of ``--tasks`` ("tvqa,how2qa,tvc,yc2c"); unknown names raise ValueError."""
    names = [t for t in tasks.split(",") if t] if isinstance(tasks, str) else list(tasks)
    unknown = [t for t in names if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown video task(s) {unknown}; choose from {', '.join(TASKS)}")
    return names


def build_video_datasets(layout: VideoLayout, tokenizer, phase: str, tasks=TASKS, prompts: dict | None = None,
                         limit: int | None = None, n_frames: int = N_FRAMES) -> dict[str, VideoDataset]:
    """The datasets of ``phase`` (train, val or test) for ``tasks``, on the splits of §1.5."""
    prompts = video_task_prompts() if prompts is None else prompts
    return {task: DATASETS[task](layout, SPLITS[phase][task], tokenizer, prompt=prompts[task], limit=limit,
                                 n_frames=n_frames)
            for task in parse_tasks(tasks)}


def build_video_loaders(datasets: dict, batch_size: int, train: bool, num_workers: int = 0) -> dict:
    """One loader per task, all with ``batch_size`` (the official video runs use ``--batch_size`` for every task);
    training loaders shuffle with the seed-0 ``DistributedSampler`` of ``multitask.train_sampler``."""
    return {task: make_loader(ds, batch_size, train, num_workers) for task, ds in datasets.items()}


def video_multitask_loader(layout: VideoLayout, tokenizer, batch_size: int, tasks=TASKS, prompts: dict | None = None,
                           limit: int | None = None, num_workers: int = 0) -> MultitaskLoader:
    """The training ``MultitaskLoader`` over the video tasks (shuffled interleaving of single-task batches)."""
    datasets = build_video_datasets(layout, tokenizer, "train", tasks, prompts, limit)
    return MultitaskLoader(build_video_loaders(datasets, batch_size, True, num_workers))
