"""Synthetic video-text data in the exact VALUE layout (see ``video``), for tests and short demo runs.

Every video shows one object (a colour and a shape of ``synth.COLORS`` x ``synth.SHAPES``) during a window of its
frames. Each colour and shape is a fixed sparse non-negative pattern over the 512 feature channels; the frames of the
window add the object's two patterns over small non-negative noise, the other frames are noise only. Videos have
between 16 and 128 frames, so the loader both zero-pads and max-pools them; the object survives either.

* TVQA / How2QA: "what object appears in the video?" with 5 / 4 object names as choices; the answer is the shown one.
* TVC / YC2C: descriptions naming the object ("someone holds up a red circle").
* Subtitles are uninformative filler lines. TVQA ``ts`` is a string "s-e", TVC/YC2C ``ts`` a list [s, e].
* TVQA's ``test_release`` repeats the ``test_public`` questions (as VALUE's does, §9 item 9).

So every label is a function of the features. Written by ``write_video_tree`` (``python -m vlpet.synth --video``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .image import COLORS, SHAPES
from ..data.video import FEAT_DIM, N_CHOICES, PROMPTS, VideoLayout

MIN_FRAMES, MAX_FRAMES = 16, 128
SHOWS = {"friends": "Friends", "bbt": "The Big Bang Theory", "castle": "Castle", "house": "House M.D."}
SUB_LINES = ("hello there.", "where did you put it?", "i think we should go now.", "look at this!",
             "okay, okay.", "what do you mean?", "let me see.", "first we mix it well.")
QUESTIONS = {"tvqa": "what object appears in the video?", "how2qa": "which object is shown?"}
TVC_DESCS = ("someone holds up a {obj}", "a {obj} is shown on the screen")
YC2C_DESCS = ("add the {obj} to the bowl", "put the {obj} in the pan")
TVC_TYPES = ("v", "vt", "t")
DEFAULTS = {"n_train": 64, "n_val": 16, "n_test": 16, "seed": 0, "feat_dim": FEAT_DIM}
SPLIT_FILES = {
    "tvqa": {"train": "train", "val": "val", "test": "test_public"},
    "how2qa": {"train": "train_release", "val": "val_release", "test": "test_public_release"},
    "tvc": {"train": "train_release", "val": "val_release", "test": "test_release"},
    "yc2c": {"train": "train_release", "val": "val_release", "test": "test_release"},
}
TS_NUMBERS = 200  # the numbers a synthetic "ts" can show


def video_synth_words() -> list[str]:
    """Every word of the synthetic video texts, for ``tokenizer.build_tokenizer`` (numbers up to 199 and 00..09 included)."""
    texts = ["[Subs] [Q] [TS] ([ ]) ( ) [Choices] - . , : ?", *[f"a{k}" for k in range(5)], *PROMPTS.values(),
             *SUB_LINES, *QUESTIONS.values(), *COLORS, *SHAPES, *TVC_DESCS, *YC2C_DESCS,
             " ".join(str(n) for n in range(TS_NUMBERS)), " ".join(f"{n:02d}" for n in range(10))]
    return [re.sub(r"\{\w+\}", " ", text) for text in texts]


class VideoWorld:
    """Random videos and their features; the concept patterns are fixed by the seed."""

    def __init__(self, rng: np.random.Generator, feat_dim: int = FEAT_DIM):
        if feat_dim < len(COLORS) + len(SHAPES):
            raise ValueError(f"feat_dim must be at least {len(COLORS) + len(SHAPES)}, got {feat_dim}")
        self.rng = rng
        self.feat_dim = feat_dim
        width = max(1, feat_dim // 16)
        channels = rng.permutation(feat_dim)
        self.patterns = {}
        for k, concept in enumerate(COLORS + SHAPES):
            pattern = np.zeros(feat_dim, dtype=np.float32)
            pattern[channels[k * width:(k + 1) * width]] = 1.0
            self.patterns[concept] = pattern

    def object(self) -> tuple[str, str]:
        return str(self.rng.choice(COLORS)), str(self.rng.choice(SHAPES))

    def features(self, obj: tuple[str, str]) -> tuple[np.ndarray, float, float]:
        """(float16 (T, feat_dim) features, ts start, ts end): the object is present in frames [s, e)."""
        n = int(self.rng.integers(MIN_FRAMES, MAX_FRAMES + 1))
        feats = np.abs(self.rng.normal(0.0, 0.3, (n, self.feat_dim))).astype(np.float32)
        length = max(2, n // 2)
        start = int(self.rng.integers(0, n - length + 1))
        feats[start:start + length] += self.rng.uniform(2.0, 3.0) * (self.patterns[obj[0]] + self.patterns[obj[1]])
        seconds = 1.5  # seconds per frame
        return feats.astype(np.float16), round(start * seconds, 2), round((start + length) * seconds, 2)

    def subtitles(self) -> list[dict]:
        """One to three filler lines with start/end times (only ``text`` is read)."""
        lines = self.rng.choice(SUB_LINES, int(self.rng.integers(1, 4)), replace=False)
        return [{"text": f" {line} ", "start": 2.0 * k, "end": 2.0 * k + 1.5} for k, line in enumerate(lines)]

    def choices(self, obj: tuple[str, str], n: int) -> tuple[list[str], int]:
        """``n`` distinct object names including the shown one, and its index."""
        names = [f"{c} {s}" for c in COLORS for s in SHAPES if (c, s) != obj]
        picked = [str(x) for x in self.rng.choice(names, n - 1, replace=False)]
        answer = int(self.rng.integers(n))
        picked.insert(answer, f"{obj[0]} {obj[1]}")
        return picked, answer


class VideoWriter:
    """Writes the video tree; videos of one source (tv, how2, yc2) share a subtitle file."""

    def __init__(self, root: Path, world: VideoWorld):
        (root / "video").mkdir(parents=True, exist_ok=True)
        self.layout = VideoLayout(root)
        self.world = world
        self.subtitles: dict[str, list[dict]] = {"tvqa": [], "how2qa": [], "yc2c": []}

    def video(self, task: str, vid_name: str) -> tuple[tuple[str, str], float, float]:
        """Draw a video: write its npz and record its subtitles; returns (object, ts start, ts end)."""
        obj = self.world.object()
        feats, start, end = self.world.features(obj)
        path = self.layout.feature_file(task, vid_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, features=feats)
        source = {"tvc": "tvqa"}.get(task, task)
        self.subtitles[source].append({"vid_name": vid_name, "sub": self.world.subtitles()})
        return obj, start, end

    def write_jsonl(self, path: Path, entries: list[dict]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(entry) + "\n" for entry in entries))

    def finish(self) -> None:
        """Write the three subtitle files."""
        for task, entries in self.subtitles.items():
            self.write_jsonl(self.layout.subtitles(task), entries)


def tv_name(rng: np.random.Generator, k: int) -> tuple[str, str]:
    show = str(rng.choice(list(SHOWS)))
    return f"{show}_s{1 + k // 100:02d}e{1 + k % 100 // 10:02d}_seg02_clip_{k % 10:02d}", SHOWS[show]


def write_qa(writer: VideoWriter, task: str, sizes: dict, first_id: int) -> None:
    """TVQA or How2QA: one question per video in each split."""
    rng, qid, k = writer.world.rng, first_id, 0
    for phase in ("train", "val", "test"):
        entries = []
        for _ in range(sizes[f"n_{phase}"]):
            if task == "tvqa":
                vid_name, show = tv_name(rng, k)
            else:
                vid_name = f"how2_{k:05d}_{5 * k}_{5 * k + 20}"
            k += 1
            obj, start, end = writer.video(task, vid_name)
            choices, answer = writer.world.choices(obj, N_CHOICES[task])
            entry = {f"a{j}": choice for j, choice in enumerate(choices)}
            entry.update(q=QUESTIONS[task], qid=qid, ts=f"{start:.2f}-{end:.2f}", vid_name=vid_name)
            if task == "tvqa":
                entry["show_name"] = show
            if phase != "test":
                entry["answer_idx"] = answer
            entries.append(entry)
            qid += 1
        writer.write_jsonl(writer.layout.annotation(task, SPLIT_FILES[task][phase]), entries)
        if task == "tvqa" and phase == "test":  # test_release = test_public + its own questions
            extra = []
            for _ in range(max(1, sizes["n_test"] // 2)):
                vid_name, show = tv_name(rng, k)
                k += 1
                obj, start, end = writer.video(task, vid_name)
                choices, _ = writer.world.choices(obj, N_CHOICES[task])
                entry = {f"a{j}": choice for j, choice in enumerate(choices)}
                entry.update(q=QUESTIONS[task], qid=qid, ts=f"{start:.2f}-{end:.2f}", vid_name=vid_name,
                             show_name=show)
                extra.append(entry)
                qid += 1
            writer.write_jsonl(writer.layout.annotation(task, "test_release"), entries + extra)


def write_captions(writer: VideoWriter, task: str, sizes: dict, first_id: int) -> None:
    """TVC or YC2C: two descriptions per clip in train/val, none in test."""
    rng, desc_id, k = writer.world.rng, first_id, 0
    templates = TVC_DESCS if task == "tvc" else YC2C_DESCS
    for phase in ("train", "val", "test"):
        entries = []
        for _ in range(sizes[f"n_{phase}"]):
            vid_name = tv_name(rng, 100000 + k)[0] if task == "tvc" else f"yc2_{k:05d}"
            clip_id = first_id + k
            k += 1
            obj, start, end = writer.video(task, vid_name)
            entry = {"vid_name": vid_name, "duration": round(end - start, 2), "ts": [start, end], "clip_id": clip_id}
            if phase != "test":
                entry["descs"] = []
                for template in templates:
                    entry["descs"].append({"desc": template.format(obj=f"{obj[0]} {obj[1]}"), "desc_id": desc_id,
                                           "type": str(rng.choice(TVC_TYPES)) if task == "tvc" else "v"})
                    desc_id += 1
            entries.append(entry)
        writer.write_jsonl(writer.layout.annotation(task, SPLIT_FILES[task][phase]), entries)


def write_video_tree(root: str | Path, n_train: int = DEFAULTS["n_train"], n_val: int = DEFAULTS["n_val"],
                     n_test: int = DEFAULTS["n_test"], seed: int = DEFAULTS["seed"],
                     feat_dim: int = DEFAULTS["feat_dim"]) -> dict[str, int]:
    """Write the synthetic video tree under ``<root>/video``; returns the number of npz files per source folder.

    ``n_*`` count videos per task and split (TVQA's test_release adds n_test // 2 more).
    """
    root = Path(root)
    sizes = {"n_train": n_train, "n_val": n_val, "n_test": n_test}
    writer = VideoWriter(root, VideoWorld(np.random.default_rng(seed), feat_dim))
    write_qa(writer, "tvqa", sizes, 100000)
    write_qa(writer, "how2qa", sizes, 200000)
    write_captions(writer, "tvc", sizes, 300000)
    write_captions(writer, "yc2c", sizes, 400000)
    writer.finish()
    folder = root / "video" / "vis_features"
    return {source: len(list((folder / source).glob("clip-vit/*.npz"))) for source in ("tv", "how2", "yc2")}
