"""Where every original file comes from (data-prep spec §5): URLs as published, sizes and checksums where published.

Sizes are approximate and only shown (``--dry-run``); completeness is checked against the server's own length, and
a published checksum (sha256, or the git blob id of a file kept in git) must match before a file is used.
"""

from __future__ import annotations

from dataclasses import dataclass

from .raw import PrepareError

MB, GB = 10**6, 10**9
VQA_S3 = "https://s3.amazonaws.com/cvmlp/vqa/mscoco/vqa"
COCO_SITE = "http://images.cocodataset.org"
GQA_SITE = "https://downloads.cs.stanford.edu/nlp/data/gqa"
NLVR_GIT = "https://raw.githubusercontent.com/lil-lab/nlvr/18924841aa96d519cfb8584f0945350f07a6d860/nlvr2/data"
NLVR_FORM = "https://goo.gl/forms/yS29stWnFWzrDBFH3"
BLIP_SITE = "https://storage.googleapis.com/sfr-vision-language-research/datasets"
KARPATHY_URL = "http://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip"


@dataclass(frozen=True)
class Item:
    """One file to fetch (or, with ``status`` gone/request, one that cannot be fetched automatically)."""

    name: str  # file name under RAW/<folder>/
    folder: str  # sub-folder of RAW
    what: str
    url: str | None = None
    size: int | None = None  # approximate bytes, display only
    checksum: tuple[str, str] | None = None  # ("sha256" | "git-blob", hex digest)
    unpack: bool = False
    provides: tuple[str, ...] = ()  # original file names it holds
    status: str = "public"  # public | gone | request
    note: str = ""
    images: bool = False
    hub: tuple[str, str] | None = None  # (repo_id, filename) on the Hugging Face Hub

    def where(self) -> str:
        """Where the file comes from, in words."""
        place = self.url or (f"huggingface.co/{self.hub[0]}" if self.hub else "")
        status = {"gone": "GONE from its host", "request": "by request only"}.get(self.status, "")
        return "; ".join(part for part in (f"{self.what}: {place}" if place else self.what, status, self.note) if part)


def _vqa(kind: str, split: str, provides: str, size: int | None) -> Item:
    name = f"v2_{kind}_{split}_mscoco.zip"
    return Item(name, "vqa", f"VQA v2 {kind.lower()} ({split.lower()})", f"{VQA_S3}/{name}", size, unpack=True,
                provides=(provides,))


COCO_IMAGES = (
    Item("train2014.zip", "coco", "COCO 2014 train images (82,783)", f"{COCO_SITE}/zips/train2014.zip", 13 * GB,
         unpack=True, images=True),
    Item("val2014.zip", "coco", "COCO 2014 val images (40,504)", f"{COCO_SITE}/zips/val2014.zip", 6 * GB,
         unpack=True, images=True),
)
KARPATHY = Item("caption_datasets.zip", "caption", "Karpathy split (dataset_coco.json)", KARPATHY_URL,
                provides=("dataset_coco.json",), status="gone",
                note="404 since 2023-09; mirror: Kaggle dataset shtvkumar/karpathy-splits (login needed), unzip it "
                     "anywhere below RAW; or 'prepare download caption' and prepare with --karpathy-fallback")
NLVR_FILES = {"train": "train.json", "valid": "dev.json", "test": "test1.json"}
NLVR_BLOBS = {"train.json": "affca2ee36563123e069f92e7c391000952e257c",
              "dev.json": "aac21163e5b59aea2bd5f05254848d7522729bec",
              "test1.json": "bf03ad9226f2d46453a89a92bc13e612fbdf4ea7"}

SOURCES: dict[str, tuple[Item, ...]] = {
    "vqa": (
        _vqa("Questions", "Train", "v2_OpenEnded_mscoco_train2014_questions.json", 7_239_401),
        _vqa("Questions", "Val", "v2_OpenEnded_mscoco_val2014_questions.json", None),
        _vqa("Annotations", "Train", "v2_mscoco_train2014_annotations.json", 21_708_861),
        _vqa("Annotations", "Val", "v2_mscoco_val2014_annotations.json", None),
        KARPATHY, *COCO_IMAGES,
    ),
    "gqa": (
        Item("questions1.2.zip", "gqa", "GQA questions 1.2", f"{GQA_SITE}/questions1.2.zip", 1_400 * MB, unpack=True,
             provides=("train_balanced_questions.json", "val_balanced_questions.json",
                       "testdev_balanced_questions.json", "submission_all_questions.json")),
        Item("images.zip", "gqa", "GQA images (148,854; VG and n... ids)", f"{GQA_SITE}/images.zip", 20_300 * MB,
             unpack=True, images=True),
    ),
    "nlvr": (
        *(Item(name, "nlvr", f"NLVR2 {name} (lil-lab/nlvr, git)", f"{NLVR_GIT}/{name}",
               checksum=("git-blob", blob), provides=(name,)) for name, blob in NLVR_BLOBS.items()),
        Item("nlvr2 images", "nlvr", "NLVR2 images (train, dev, test1)", images=True, status="request",
             note=f"fill in the request form {NLVR_FORM} (lil-lab/nlvr nlvr2/README.md); the per-image left_url/"
                  "right_url of the JSON files are largely dead, and a missing image breaks the loader"),
    ),
    "caption": (
        KARPATHY,
        *(Item(name, "caption", f"BLIP's Karpathy {split} split (for --karpathy-fallback)", f"{BLIP_SITE}/{name}",
               provides=(name,)) for split, name in (("val", "coco_karpathy_val.json"),
                                                     ("test", "coco_karpathy_test.json"))),
        Item("annotations_trainval2014.zip", "coco", "COCO 2014 captions (for --karpathy-fallback)",
             f"{COCO_SITE}/annotations/annotations_trainval2014.zip", 241 * MB, unpack=True,
             provides=("captions_train2014.json", "captions_val2014.json")),
        *COCO_IMAGES,
    ),
    "weights": (
        Item("open_clip_model.safetensors", "weights", "CLIP RN101 (OpenAI weights, fp32 copy)", size=479 * MB,
             hub=("timm/resnet101_clip.openai", "open_clip_model.safetensors"),
             note="OpenAI's own RN101.pt URL is dead (openai/CLIP#516)"),
    ),
}


def origin(source: str, name: str) -> str:
    """Where the original file ``name`` of ``source`` comes from, and the command that fetches it."""
    for item in SOURCES[source]:
        if name in item.provides:
            command = f"python -m vlpet prepare download {source} --to RAW"
            return item.where() + (f"; fetch it with: {command}" if item.status == "public" else "")
    raise PrepareError(f"no original file named {name} in the {source} manifest")
