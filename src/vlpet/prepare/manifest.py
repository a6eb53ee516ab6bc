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
NLVR_CONTACT = "nlvr@googlegroups.com"
NLVR_PAGE = "http://lil.nlp.cornell.edu/nlvr/"
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
    hub_type: str = "model"  # model | dataset
    member: str | None = None  # the file to take out of this (zip) download
    mirrors: tuple["Item", ...] = ()  # sources tried in order; the first whose copy validates wins
    validate: str | None = None  # karpathy.validate kind: karpathy | blip-val | blip-test

    def where_hub(self) -> str:
        return f"huggingface.co/{'datasets/' if self.hub_type == 'dataset' else ''}{self.hub[0]}"

    def where(self) -> str:
        """Where the file comes from, in words."""
        if self.mirrors:
            return f"{self.what}: first valid copy of " + ", then ".join(
                (m.url or f"{m.where_hub()} {m.hub[1]}") + (f" ({m.note})" if m.note else "")
                for m in self.mirrors) + (f"; {self.note}" if self.note else "")
        place = self.url or (f"{self.where_hub()} {self.hub[1]}" if self.hub else "")
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
# The Karpathy split: every image of it, by split (train counts train + restval); data so tests can shrink it
KARPATHY_COUNTS = {"train": 113_287, "val": 5_000, "test": 5_000}
BLIP_COUNT = 5_000  # images of BLIP's coco_karpathy_{val,test}.json each
KARPATHY = Item(
    "dataset_coco.json", "caption", "Karpathy split (dataset_coco.json)", size=144 * MB,
    provides=("dataset_coco.json",), validate="karpathy",
    note="each copy must hold 113,287 / 5,000 / 5,000 train(+restval) / val / test images; else: the Kaggle dataset "
         "shtvkumar/karpathy-splits (login) unzipped below RAW, or prepare with --karpathy-fallback",
    mirrors=(
        Item("caption_datasets.zip", "caption", "Karpathy's own zip", KARPATHY_URL, member="dataset_coco.json",
             note="404 since 2023-09, still tried first"),
        Item("caption_datasets.zip", "caption", "Hub copy of Karpathy's zip", size=36_700_000,
             hub=("gpantaz/karpathy_split", "caption_datasets.zip"), hub_type="dataset", member="dataset_coco.json"),
        Item("karpathy_coco.json", "caption", "Hub copy of dataset_coco.json (OpenFlamingo eval benchmark)",
             size=144 * MB, hub=("openflamingo/eval_benchmark", "mscoco_karpathy/karpathy_coco.json"),
             hub_type="dataset"),
    ))
MM_INTERLEAVED = ("OpenGVLab/MM-Interleaved", "assets/datasets/coco/annotations")


def _blip(split: str) -> Item:
    name = f"coco_karpathy_{split}.json"
    return Item(name, "caption", f"BLIP's Karpathy {split} split (for --karpathy-fallback)", provides=(name,),
                validate=f"blip-{split}", mirrors=(
                    Item(name, "caption", "BLIP's bucket", f"{BLIP_SITE}/{name}", note="403 since 2024-11"),
                    Item(name, "caption", "Hub copy (OpenGVLab/MM-Interleaved)",
                         hub=(MM_INTERLEAVED[0], f"{MM_INTERLEAVED[1]}/{name}"))))
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
             note=f"fill in the request form {NLVR_FORM} (lil-lab/nlvr nlvr2/README.md; goo.gl links that were "
                  f"inactive stopped resolving on 2025-08-25: if it does not open, write to the maintainers at "
                  f"{NLVR_CONTACT}; project page {NLVR_PAGE}); train ≈ 3 zips of ≈31.6 GB, dev ≈ 1.2 GB (third-party "
                  "copies, unverified); research use only; the per-image left_url/right_url of the JSON files are "
                  "largely dead, and a missing image breaks the loader"),
    ),
    "caption": (
        KARPATHY, _blip("val"), _blip("test"),
        Item("annotations_trainval2014.zip", "coco", "COCO 2014 captions (for --karpathy-fallback)",
             f"{COCO_SITE}/annotations/annotations_trainval2014.zip", 241 * MB, unpack=True,
             provides=("captions_train2014.json", "captions_val2014.json")),
        *COCO_IMAGES,
    ),
    "weights": (
        Item("model.safetensors", "weights", "CLIP RN101 image tower (OpenAI weights, fp32 copy, timm names)",
             size=226 * MB, hub=("timm/resnet101_clip.openai", "model.safetensors"),
             note="the tower is all extract reads (--weights RAW/weights/model.safetensors); the full CLIP file "
                  "open_clip_model.safetensors (479 MB) works too; OpenAI's own RN101.pt URL is dead "
                  "(openai/CLIP#516)"),
    ),
}


def origin(source: str, name: str) -> str:
    """Where the original file ``name`` of ``source`` comes from, and the command that fetches it."""
    for item in SOURCES[source]:
        if name in item.provides and item.mirrors:
            return item.where() + f"; fetch it with: python -m vlpet prepare download {source} --to RAW"
        if name in item.provides:
            command = f"python -m vlpet prepare download {source} --to RAW"
            return item.where() + (f"; fetch it with: {command}" if item.status == "public" else "")
    raise PrepareError(f"no original file named {name} in the {source} manifest")
