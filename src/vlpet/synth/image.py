"""Synthetic image-text data in the exact on-disk layout of the real data (docs/data.md), for tests and the demo.

Every image is a scene of one or two coloured shapes (4 colours x 4 shapes) placed in separated cells of the 7x7 grid.
Each colour and each shape is a fixed sparse non-negative pattern over the feature channels; an object adds its
colour and shape patterns to its cell, over small non-negative noise (like post-ReLU CLIP grid features). So:

* VQA / GQA answer questions about the scene (colour of a shape, shape of a colour, is there a ...);
* NLVR2 statements are true or false from the two scenes (both contain ..., the left image ...);
* captions name the objects in reading order ("a red circle and a blue square").

All are functions of the features a small model can learn. Usage:
``python -m vlpet.synth --root DIR [--n-train N --n-val N --n-test N --seed S --feat-dim F]``;
``--video`` also writes the video tree (``--video only``: just the video tree; see ``synth.video``).
``--images DIR`` also renders every scene as an image file ``DIR/<COCO|VG|GQA|nlvr>/<img_id>.png`` (or ``.jpg``):
each object drawn in its colour and shape in its cell of a 7x7 grid of 32-pixel cells, on a grey background, so the
feature extractor (``python -m vlpet extract``) can be run end to end on real-format images.
``--originals RAW`` also writes the same world as the *original* files that ``python -m vlpet prepare`` reads (VQA v2
questions and annotations, Karpathy's ``dataset_coco.json``, GQA's balanced question files, NLVR2's JSON lines),
laid out below RAW as ``prepare download`` unpacks them; ``write_originals`` writes only those (and the images). A
seed gives the same world either way, so ``prepare`` on the originals rebuilds the tree's annotation files (except
the answer vocabularies, which ``prepare`` copies from the real release).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from ..prepare.gqa import SPLIT_FILES as GQA_FILES
from ..prepare.gqa import SUBMIT_FILE as GQA_SUBMIT_FILE
from ..prepare.karpathy import KARPATHY_FILE
from ..prepare.manifest import NLVR_FILES
from ..prepare.vqa import annotations_file, questions_file
from ..formats import N_GRID
from ..data.layout import GQA_VG_SPLITS, DataLayout, h5_path

COLORS = ("red", "green", "blue", "yellow")
RGB = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 60, 220), "yellow": (235, 210, 30)}
CELL = 32  # pixels per grid cell of a rendered scene: 7 x 32 = 224
IMAGE_FORMATS = ("png", "jpg")
SHAPES = ("circle", "square", "triangle", "star")
SLOTS = (8, 12, 24, 36, 40)  # row-major cells (1,1), (1,5), (3,3), (5,1), (5,5): apart after the 7x7 -> 6x6 pool
YES_NO = ("yes", "no")
EMPTY_LABEL_ANSWER = "violet"  # outside both answer vocabularies (ours, VQA's 3129): an empty label, as in real VQA
QUESTIONS = {
    "vqa": {"color": "what color is the {shape}?", "shape": "what shape is the {color} object?",
            "exists": "is there a {color} {shape}?"},
    "gqa": {"color": "what is the color of the {shape}?", "shape": "which shape is the {color} one?",
            "exists": "is there a {color} {shape} in the image?"},
}
STATEMENTS = {
    "both images contain a {shape}.": lambda a, b, c, s: s in a.shapes and s in b.shapes,
    "the left image contains a {color} object.": lambda a, b, c, s: c in a.colors,
    "the right image contains a {color} {shape}.": lambda a, b, c, s: (c, s) in b.pairs,
    "exactly one image contains a {shape}.": lambda a, b, c, s: (s in a.shapes) != (s in b.shapes),
}
CAPTIONS = ("{objects}", "a picture of {objects}", "there is {objects}", "an image with {objects}",
            "{objects} on a plain background")
PROMPT_WORDS = ("vqa:", "gpa:", "gqa:", "nlvr:", "caption:", "true", "false")
VQA_QUESTION_TYPES = {"color": "what color is the", "shape": "what", "exists": "is there a"}
GQA_STRUCTURAL_TYPES = {"color": "query", "shape": "query", "exists": "verify"}
QUESTIONS_PER_IMAGE = 3
DEFAULTS = {"n_train": 128, "n_val": 32, "n_test": 32, "seed": 0, "feat_dim": 2048}


def synth_words() -> list[str]:
    """Every word of the synthetic texts (prompts, questions, answers, statements, captions), for ``build_tokenizer``."""
    texts = [*PROMPT_WORDS, *YES_NO, *COLORS, *SHAPES, "and", *STATEMENTS, *CAPTIONS]
    texts += [q for table in QUESTIONS.values() for q in table.values()]
    return [re.sub(r"\{\w+\}", " ", text) for text in texts]


class Scene:
    """One image: a list of (colour, shape, slot) objects in reading order."""

    def __init__(self, objects: list[tuple[str, str, int]]):
        self.objects = sorted(objects, key=lambda obj: obj[2])
        self.colors = {c for c, _, _ in self.objects}
        self.shapes = {s for _, s, _ in self.objects}
        self.pairs = {(c, s) for c, s, _ in self.objects}

    def caption(self) -> str:
        """The objects in reading order, e.g. "a red circle and a blue square"."""
        return " and ".join(f"a {c} {s}" for c, s, _ in self.objects)


class World:
    """Random scenes and their features; the concept patterns are fixed by the seed."""

    def __init__(self, rng: np.random.Generator, feat_dim: int):
        if feat_dim < len(COLORS) + len(SHAPES):
            raise ValueError(f"feat_dim must be at least {len(COLORS) + len(SHAPES)}, got {feat_dim}")
        self.rng = rng
        width = max(1, feat_dim // 16)
        channels = rng.permutation(feat_dim)
        self.patterns = {}
        for k, concept in enumerate(COLORS + SHAPES):
            pattern = np.zeros(feat_dim, dtype=np.float32)
            pattern[channels[k * width:(k + 1) * width]] = 1.0
            self.patterns[concept] = pattern
        self.feat_dim = feat_dim

    def scene(self) -> Scene:
        """One or two objects with distinct colours, shapes and slots."""
        n = int(self.rng.integers(1, 3))
        colors = self.rng.choice(COLORS, n, replace=False)
        shapes = self.rng.choice(SHAPES, n, replace=False)
        slots = self.rng.choice(SLOTS, n, replace=False)
        return Scene([(str(c), str(s), int(p)) for c, s, p in zip(colors, shapes, slots)])

    def features(self, scene: Scene) -> np.ndarray:
        """float16 (49, feat_dim): noise plus each object's colour and shape patterns at its cell."""
        feats = np.abs(self.rng.normal(0.0, 0.3, (N_GRID, self.feat_dim))).astype(np.float32)
        for color, shape, slot in scene.objects:
            feats[slot] += self.rng.uniform(2.0, 3.0) * (self.patterns[color] + self.patterns[shape])
        return feats.astype(np.float16)

    def question(self, scene: Scene, task: str) -> tuple[str, str, str]:
        """(question, answer, kind) about ``scene`` in the phrasing of ``task`` (vqa or gqa)."""
        kind = str(self.rng.choice(list(QUESTIONS[task])))
        color, shape, _ = scene.objects[int(self.rng.integers(len(scene.objects)))]
        answer = {"color": color, "shape": shape}.get(kind, "yes")
        if kind == "exists" and self.rng.random() < 0.5:
            absent = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in scene.pairs]
            color, shape = absent[int(self.rng.integers(len(absent)))]
            answer = "no"
        return QUESTIONS[task][kind].format(color=color, shape=shape), answer, kind

    def questions(self, scene: Scene, task: str) -> list[tuple[str, str, str]]:
        """Up to QUESTIONS_PER_IMAGE distinct questions about ``scene``."""
        asked = {}
        for _ in range(10 * QUESTIONS_PER_IMAGE):
            sent, answer, kind = self.question(scene, task)
            asked.setdefault(sent, (sent, answer, kind))
            if len(asked) == QUESTIONS_PER_IMAGE:
                break
        return list(asked.values())

    def statement(self, left: Scene, right: Scene, label: bool) -> tuple[str, int]:
        """An NLVR2 statement about the pair, aiming at ``label`` (the returned label is always the true one)."""
        for _ in range(100):
            template = str(self.rng.choice(list(STATEMENTS)))
            color, shape = str(self.rng.choice(COLORS)), str(self.rng.choice(SHAPES))
            truth = STATEMENTS[template](left, right, color, shape)
            if truth == label:
                break
        return template.format(color=color, shape=shape), int(truth)

    def annotators(self, answer: str, kind: str) -> list[str]:
        """Ten raw VQA answers: mostly ``answer``, sometimes a few annotators disagree, rarely none is in vocab."""
        if self.rng.random() < 0.03:
            return [EMPTY_LABEL_ANSWER] * 10
        options = {"color": COLORS, "shape": SHAPES}.get(kind, YES_NO)
        others = [a for a in options if a != answer]
        n_right = 10 if self.rng.random() < 0.8 else int(self.rng.integers(8, 10))
        return [answer] * n_right + [str(self.rng.choice(others)) for _ in range(10 - n_right)]


def soft_score(count: int) -> float:
    """LXMERT/VQA soft score of an answer given by ``count`` of the 10 annotators."""
    return (0.0, 0.3, 0.6, 0.9)[count] if count < 4 else 1.0


def shape_points(shape: str, left: int, top: int) -> list[tuple[float, float]]:
    """Outline of a square, triangle or star inside one cell (4-pixel margin)."""
    c, r = left + CELL / 2, CELL / 2 - 4
    if shape == "square":
        return [(c - r, top + 4), (c + r, top + 4), (c + r, top + CELL - 4), (c - r, top + CELL - 4)]
    if shape == "triangle":
        return [(c, top + 4), (c + r, top + CELL - 4), (c - r, top + CELL - 4)]
    return [(c + (r if k % 2 == 0 else r / 2.5) * np.sin(np.pi * k / 5), top + CELL / 2 - (r if k % 2 == 0 else r / 2.5)
             * np.cos(np.pi * k / 5)) for k in range(10)]


def render(scene: Scene):
    """The scene as a 224x224 RGB PIL image: each object in its colour and shape, in its cell of the 7x7 grid."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (7 * CELL, 7 * CELL), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    for color, shape, slot in scene.objects:
        left, top = (slot % 7) * CELL, (slot // 7) * CELL
        if shape == "circle":
            draw.ellipse((left + 4, top + 4, left + CELL - 4, top + CELL - 4), fill=RGB[color])
        else:
            draw.polygon(shape_points(shape, left, top), fill=RGB[color])
    return image


def write_json(path: Path, obj, lines: bool = False) -> None:
    """Write one JSON file (or, with ``lines``, one JSON object per line), creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(o) + "\n" for o in obj) if lines else json.dumps(obj))


class Writer:
    """Writes one world: the processed tree under ``root`` (features and the loaders' files), the original files
    under ``raw`` and the rendered scenes under ``images``; each is optional."""

    def __init__(self, root: Path | None, world: World, images: Path | None = None, image_format: str = "png",
                 raw: Path | None = None):
        if image_format not in IMAGE_FORMATS:
            raise ValueError(f"image format must be one of {', '.join(IMAGE_FORMATS)}, got {image_format!r}")
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
        self.layout = None if root is None else DataLayout(root)
        self.world, self.raw = world, raw
        self.images, self.image_format = images, image_format
        self.drawn: Counter = Counter()  # scenes per image source

    def tree(self, obj, where: Callable[..., Path], *args) -> None:
        """Write ``obj`` to the processed tree's file ``where(layout, *args)``, a ``DataLayout`` path method (nothing
        without a tree)."""
        if self.layout is not None:
            write_json(where(self.layout, *args), obj)

    def original(self, relative: str, obj, lines: bool = False) -> None:
        """Write ``obj`` as the original file ``RAW/<relative>`` (nothing without ``raw``)."""
        if self.raw is not None:
            write_json(self.raw / relative, obj, lines)

    def image(self, source: str, img_id: str) -> Scene:
        """Draw a scene of ``source`` (COCO, VG, GQA or nlvr): its h5 file ``<img_id>.h5`` holding
        ``<img_id>/features`` in the tree, its rendering ``<images>/<source>/<img_id>.<format>``."""
        scene = self.world.scene()
        features = self.world.features(scene)  # drawn even without a tree: a seed gives one world whatever is written
        self.drawn[source] += 1
        if self.layout is not None:
            folder = self.layout.feature_folder(source)
            folder.mkdir(parents=True, exist_ok=True)
            with h5py.File(h5_path(folder, img_id), "w") as f:
                f.create_dataset(f"{img_id}/features", data=features)
        if self.images is not None:
            (self.images / source).mkdir(parents=True, exist_ok=True)
            render(scene).save(self.images / source / f"{img_id}.{self.image_format}")
        return scene

    def vocab(self, task: str, answers: list[str]) -> None:
        """trainval_ans2label.json and trainval_label2ans.json."""
        if self.layout is not None:
            ans2label, label2ans = self.layout.answer_vocab(task)
            write_json(ans2label, {a: i for i, a in enumerate(answers)})
            write_json(label2ans, answers)


def coco_images(writer: Writer, sizes: dict) -> dict[str, list[tuple[int, str, Scene]]]:
    """COCO images per Karpathy split (train = train2014; restval, val, test = val2014): (cocoid, img_id, scene)."""
    counts = {"train": sizes["n_train"], "restval": max(1, sizes["n_train"] // 4), "val": sizes["n_val"],
              "test": sizes["n_test"]}
    images, next_id = {}, {"train2014": 100000, "val2014": 500000}
    for split, count in counts.items():
        subset = "train2014" if split == "train" else "val2014"
        images[split] = []
        for _ in range(count):
            next_id[subset] += 1
            img_id = f"COCO_{subset}_{next_id[subset]:012d}"
            images[split].append((next_id[subset], img_id, writer.image("COCO", img_id)))
    return images


def write_captions(writer: Writer, images: dict) -> None:
    """COCO/dataset_coco.json: five references per image naming its objects (the original: the same file)."""
    entries, sent_id = [], 0
    for split, split_images in images.items():
        for cocoid, img_id, scene in split_images:
            raws = [template.format(objects=scene.caption()) for template in CAPTIONS]
            sentences = [{"tokens": raw.split(), "raw": raw, "imgid": len(entries), "sentid": sent_id + k}
                         for k, raw in enumerate(raws)]
            entries.append({"filepath": img_id.split("_")[1], "sentids": [s["sentid"] for s in sentences],
                            "filename": f"{img_id}.jpg", "imgid": len(entries), "split": split,
                            "sentences": sentences, "cocoid": cocoid})
            sent_id += len(raws)
    karpathy = {"images": entries, "dataset": "coco"}
    writer.tree(karpathy, DataLayout.coco_karpathy)
    writer.original(f"caption/caption_datasets/{KARPATHY_FILE}", karpathy)


def vqa_question(writer: Writer, cocoid: int, img_id: str, question: tuple[str, str, str], k: int) -> tuple[dict, dict]:
    """(karpathy entry, raw annotation) of the k-th question on one image."""
    sent, answer, kind = question
    raw = writer.world.annotators(answer, kind)
    counts = Counter(raw)
    label = {a: soft_score(n) for a, n in counts.items() if a != EMPTY_LABEL_ANSWER}
    question_type = VQA_QUESTION_TYPES[kind]
    answer_type = "yes/no" if kind == "exists" else "other"
    question_id = cocoid * 1000 + k
    entry = {"answer_type": answer_type, "img_id": img_id, "label": label, "question_id": question_id,
             "question_type": question_type, "sent": sent}
    annotation = {"question_type": question_type, "multiple_choice_answer": counts.most_common(1)[0][0],
                  "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": j + 1} for j, a in enumerate(raw)],
                  "image_id": cocoid, "answer_type": answer_type, "question_id": question_id}
    return entry, annotation


def vqa_original(kind: str, subset: str) -> str:
    """Where ``prepare download vqa`` unpacks a VQA v2 file below RAW (``kind`` Questions or Annotations)."""
    name = questions_file(subset) if kind == "Questions" else annotations_file(subset)
    return f"vqa/v2_{kind}_{subset[:-4].capitalize()}_mscoco/{name}"


def write_vqa(writer: Writer, images: dict) -> None:
    """vqa/karpathy_{train,val,test}.json, the raw annotation files and the answer vocabulary; the originals: VQA v2's
    question and annotation files."""
    splits = {"karpathy_train": images["train"] + images["restval"], "karpathy_val": images["val"],
              "karpathy_test": images["test"]}
    annotations, questions = {"train2014": [], "val2014": []}, {"train2014": [], "val2014": []}
    for split, split_images in splits.items():
        entries = []
        for cocoid, img_id, scene in split_images:
            subset = img_id.split("_")[1]
            for k, question in enumerate(writer.world.questions(scene, "vqa")):
                entry, annotation = vqa_question(writer, cocoid, img_id, question, k)
                if split != "karpathy_train":
                    entry["is_topk_optimal"] = bool(entry["label"])
                entries.append(entry)
                annotations[subset].append(annotation)
                questions[subset].append({"image_id": cocoid, "question": entry["sent"],
                                          "question_id": entry["question_id"]})
        writer.tree(entries, DataLayout.vqa_split, split)
    for subset, anns in annotations.items():
        header = {"info": {"description": "synthetic VQA annotations (vlpet.synth.image)"}, "license": {},
                  "data_subtype": subset, "data_type": "mscoco"}
        writer.tree({**header, "annotations": anns}, DataLayout.vqa_annotations, subset)
        writer.original(vqa_original("Annotations", subset), {**header, "annotations": anns})
        writer.original(vqa_original("Questions", subset),
                        {**header, "task_type": "Open-Ended", "questions": questions[subset]})
    writer.vocab("vqa", [*YES_NO, *COLORS, *SHAPES])


def write_gqa(writer: Writer, sizes: dict) -> None:
    """GQA/{train,valid,testdev,submit}.json with VG (train/valid) and GQA (testdev/submit) images; the originals:
    GQA 1.2's ``{train,val,testdev}_balanced_questions.json`` and ``submission_all_questions.json``."""
    counts = {"train": sizes["n_train"], "valid": sizes["n_val"], "testdev": sizes["n_val"],
              "submit": sizes["n_test"]}
    question_id, image_number = 20000000, 2300000
    for split, count in counts.items():
        entries, originals = [], {}
        for _ in range(count):
            image_number += 1
            vg = split in GQA_VG_SPLITS
            img_id = str(image_number) if vg else f"n{image_number}"
            scene = writer.image("VG" if vg else "GQA", img_id)
            for sent, answer, kind in writer.world.questions(scene, "gqa"):
                question_id += 1
                entry = {"img_id": img_id, "question_id": str(question_id), "sent": sent}
                original = {"imageId": img_id, "question": sent, "isBalanced": True,
                            "types": {"structural": GQA_STRUCTURAL_TYPES[kind]}}
                if split != "submit":
                    entry["label"], original["answer"] = {answer: 1.0}, answer
                entries.append(entry)
                originals[str(question_id)] = original
        writer.tree(entries, DataLayout.gqa_split, split)
        writer.original(f"gqa/questions1.2/{GQA_FILES.get(split, GQA_SUBMIT_FILE)}", originals)
    writer.vocab("gqa", [*YES_NO, *COLORS, *SHAPES])


def write_nlvr(writer: Writer, sizes: dict) -> None:
    """nlvr/{train,valid,test}.json: image pairs with one true and one false statement each; the originals: NLVR2's
    ``train.json``, ``dev.json``, ``test1.json`` (JSON lines; ``left_url``/``right_url`` name the rendered files)."""
    for split, count in (("train", sizes["n_train"]), ("valid", sizes["n_val"]), ("test", sizes["n_test"])):
        entries, lines = [], []
        for pair in range(max(1, count // 2)):
            stem = f"{Path(NLVR_FILES[split]).stem}-{pair}-0"
            left, right = (writer.image("nlvr", f"{stem}-img{k}") for k in (0, 1))
            for k, wanted in enumerate(writer.world.rng.permutation([True, False])):
                sent, label = writer.world.statement(left, right, bool(wanted))
                entries.append({"identifier": f"{stem}-{k}", "img0": f"{stem}-img0", "img1": f"{stem}-img1",
                                "label": label, "sent": sent, "uid": f"nlvr2_{split}_{len(entries)}"})
                lines.append({"identifier": f"{stem}-{k}", "sentence": sent, "label": str(bool(label)),
                              **{f"{side}_url": f"{stem}-img{i}.{writer.image_format}"
                                 for i, side in enumerate(("left", "right"))}})
        writer.tree(entries, DataLayout.nlvr_split, split)
        writer.original(f"nlvr/{NLVR_FILES[split]}", lines, lines=True)


def write_world(writer: Writer, sizes: dict) -> None:
    """Every task of one world, in a fixed order (the random stream, hence the world, depends on it)."""
    images = coco_images(writer, sizes)
    write_captions(writer, images)
    write_vqa(writer, images)
    write_gqa(writer, sizes)
    write_nlvr(writer, sizes)


def write_synthetic(root: str | Path, n_train: int = DEFAULTS["n_train"], n_val: int = DEFAULTS["n_val"],
                    n_test: int = DEFAULTS["n_test"], seed: int = DEFAULTS["seed"],
                    feat_dim: int = DEFAULTS["feat_dim"], images: str | Path | None = None,
                    image_format: str = "png", originals: str | Path | None = None) -> dict[str, int]:
    """Write synthetic VQA, GQA, NLVR2 and COCO caption data under ``root``; returns the number of h5 files written.
    With ``images``, every scene is also rendered to ``<images>/<COCO|VG|GQA|nlvr>/<img_id>.<image_format>``; with
    ``originals``, the same world is also written as the original files (see ``write_originals``).

    ``n_*`` count images per task and split (VQA and GQA ask 3 questions per image, NLVR2 pairs images two by two
    with 2 statements per pair, captions have 5 references per image).
    """
    root = Path(root)
    sizes = {"n_train": n_train, "n_val": n_val, "n_test": n_test}
    writer = Writer(root, World(np.random.default_rng(seed), feat_dim), None if images is None else Path(images),
                    image_format, None if originals is None else Path(originals))
    write_world(writer, sizes)
    return {folder: len(list((root / folder).glob("clip_features/*/*.h5"))) for folder in ("COCO", "VG", "GQA", "nlvr")}


def write_originals(raw: str | Path, images: str | Path | None = None, n_train: int = DEFAULTS["n_train"],
                    n_val: int = DEFAULTS["n_val"], n_test: int = DEFAULTS["n_test"], seed: int = DEFAULTS["seed"],
                    image_format: str = "png", feat_dim: int = DEFAULTS["feat_dim"]) -> dict[str, int]:
    """Write the synthetic world as the original files ``python -m vlpet prepare`` reads, below ``raw`` where
    ``prepare download`` unpacks them, and (with ``images``) its scenes rendered to
    ``<images>/<COCO|VG|GQA|nlvr>/<img_id>.<image_format>``: the input of ``python -m vlpet extract``. No features
    are written. Returns the number of images per source folder.

    ``raw/vqa/v2_{Questions,Annotations}_{Train,Val}_mscoco/``: VQA v2 questions and annotations (10 answers each);
    ``raw/caption/caption_datasets/dataset_coco.json``: Karpathy's split; ``raw/gqa/questions1.2/``: GQA's
    ``*_balanced_questions.json`` and ``submission_all_questions.json``; ``raw/nlvr/{train,dev,test1}.json``: NLVR2
    JSON lines. Same arguments as ``write_synthetic``: with the same ``seed`` and ``feat_dim`` (which only steers the
    random stream here), ``prepare`` on these files gives that tree's annotation files.
    """
    sizes = {"n_train": n_train, "n_val": n_val, "n_test": n_test}
    writer = Writer(None, World(np.random.default_rng(seed), feat_dim), None if images is None else Path(images),
                    image_format, Path(raw))
    write_world(writer, sizes)
    return dict(writer.drawn)
