"""CLIP RN101 grid features of images, by the VL-Adapter recipe (``feature_extraction/coco_CLIP.py``; spec §3.3-§3.5).

Per image: ``PIL.Image.open(p).convert("RGB")`` (truncated files are loaded, as the original sets
``ImageFile.LOAD_TRUNCATED_IMAGES``), a 224x224 *squash* with PIL's bicubic resize (no aspect ratio kept, no crop),
``/255``, CLIP mean/std in fp32; the trunk's ``layer4`` output (B, 2048, 7, 7) becomes ``(49, 2048)`` with row
``7*h + w`` and is stored as float16 in ``<out>/<img_id>.h5`` under ``<img_id>/features``. On CUDA the convs run in
fp16 with BatchNorm in fp32 (OpenAI's ``convert_weights``), on CPU everything is fp32. The only loss on CPU is the
float16 rounding of the stored values.
"""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image, ImageFile
from torch.utils.data import DataLoader, Dataset

from .files import in_shard, list_inputs, one_line, remove_stale_temps, write_atomic, write_skipped
from .resnet import ModifiedResNet
from .weights import hub_weights, load_trunk

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
INPUT_SIZE = 224
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def fp16_exact(trunk: ModifiedResNet) -> bool:
    """Whether every conv weight is exactly representable in fp16: evidence (spec §3.6) that an fp32 file is an
    upcast of OpenAI's checkpoint, whose ``convert_weights`` stored convs in fp16 (BatchNorm stayed fp32)."""
    return all(bool((m.weight.half().float() == m.weight.float()).all()) for m in trunk.modules()
               if isinstance(m, torch.nn.Conv2d))


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; otherwise the named device (a bad name is a ValueError)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"--device: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine (use --device cpu or auto)")
    return device


def decode(path: str | Path) -> Image.Image:
    """The RGB image of a file (truncated files load, as in the original extractor)."""
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    with Image.open(path) as image:
        return image.convert("RGB")


def preprocess(image: Image.Image) -> torch.Tensor:
    """(3, 224, 224) float32: RGB, bicubic squash to 224x224, /255, CLIP mean/std (torchvision ``Resize((224, 224),
    BICUBIC)`` + ``ToTensor`` + ``Normalize`` on a PIL image, without torchvision)."""
    image = image.convert("RGB").resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BICUBIC)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / np.float32(255)).permute(2, 0, 1)
    mean, std = (torch.tensor(v, dtype=torch.float32).view(3, 1, 1) for v in (CLIP_MEAN, CLIP_STD))
    return (pixels - mean) / std


def grid_rows(grid: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C) with row ``W*h + w`` (the original ``permute(1, 2, 0).reshape(49, C)``)."""
    return grid.permute(0, 2, 3, 1).reshape(grid.shape[0], -1, grid.shape[1])


class GridExtractor:
    """The RN101 trunk on a device with the recipe's precision; ``grid`` maps preprocessed pixels to float16 rows."""

    def __init__(self, trunk: ModifiedResNet, device: str | torch.device = "cpu"):
        self.device = resolve_device(str(device))
        trunk = trunk.eval().to(self.device)
        self.trunk = trunk.half_convs() if self.device.type == "cuda" else trunk.float()
        self.channels = trunk.out_channels
        self.weights: dict | None = None  # the weights file, whether its convs are exact fp16 (load)

    @classmethod
    def load(cls, weights: str | None = None, pretrained: bool = False, device: str = "cpu") -> "GridExtractor":
        """RN101 with a local OpenAI-format weights file, or (``pretrained``) the hub copy of OpenAI's weights."""
        if (weights is None) == (not pretrained):
            raise ValueError("give exactly one of --weights FILE and --pretrained")
        path = weights if weights is not None else hub_weights()
        trunk = load_trunk(path)
        exact = fp16_exact(trunk)  # before the CUDA policy makes every conv fp16
        extractor = cls(trunk, device)
        extractor.weights = {"file": str(path), "convs_fp16_exact": exact}
        return extractor

    @torch.no_grad()
    def grid(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, 224, 224) normalised fp32 pixels -> (B, 49, C) float16 on the CPU."""
        dtype = self.trunk.conv1.weight.dtype
        return grid_rows(self.trunk(pixels.to(self.device, dtype))).half().cpu()

    def __call__(self, images: list[Image.Image]) -> torch.Tensor:
        """(N, 49, C) float32 holding the float16-rounded values an h5 file would store."""
        return self.grid(torch.stack([preprocess(image) for image in images])).float()


class ImageFiles(Dataset):
    """Decodes and preprocesses images in DataLoader workers; an unreadable file gives its error instead."""

    def __init__(self, paths: list[Path]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            return index, preprocess(decode(self.paths[index])), None
        except Exception as err:  # any decoding failure is reported, never fatal
            return index, None, one_line(err)


def collate(items: list) -> tuple[list[int], torch.Tensor | None, list[tuple[int, str]]]:
    """(indices of decoded images, their stacked pixels or None, [(index, error)] of the unreadable ones)."""
    good = [(i, x) for i, x, _ in items if x is not None]
    bad = [(i, err) for i, x, err in items if x is None]
    return [i for i, _ in good], torch.stack([x for _, x in good]) if good else None, bad


def write_grid(path: Path, img_id: str, rows: np.ndarray) -> None:
    """``<img_id>/features`` = rows (49, C) float16, contiguous, uncompressed, written atomically."""
    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.create_group(img_id)["features"] = rows

    write_atomic(path, write)


def is_complete(path: Path, channels: int) -> bool:
    """An output counts as done when it exists with at least the bytes of its (49, C) float16 data (writes are
    atomic, so a file under the final name is whole)."""
    return path.is_file() and path.stat().st_size >= 49 * channels * 2


def extract_images(images: str | Path, out: str | Path, extractor: GridExtractor, batch_size: int = 32,
                   workers: int = 2, shard: tuple[int, int] | None = None, progress: bool = True,
                   ids: set[str] | None = None) -> dict:
    """Write ``<out>/<img_id>.h5`` for every image below ``images`` (in the shard; only ``ids`` when given),
    skipping complete outputs; returns the summary (counts, seconds, images/s, the skipped report)."""
    from tqdm.auto import tqdm

    out = Path(out)
    found = list_inputs(images, IMAGE_SUFFIXES, "image")
    inputs = {k: p for k, p in found.items() if in_shard(k, shard) and (ids is None or k in ids)}
    missing = sorted(k for k in ids if k not in found and in_shard(k, shard)) if ids is not None else []
    remove_stale_temps(out)
    todo = [(k, p) for k, p in inputs.items() if not is_complete(out / f"{k}.h5", extractor.channels)]
    out.mkdir(parents=True, exist_ok=True)
    loader = DataLoader(ImageFiles([p for _, p in todo]), batch_size=batch_size, num_workers=workers,
                        collate_fn=collate)
    skipped, start = [], time.perf_counter()
    with tqdm(total=len(todo), unit="img", desc="RN101 grid", disable=not progress, dynamic_ncols=True) as bar:
        for indices, pixels, bad in loader:
            if pixels is not None:
                for i, rows in zip(indices, extractor.grid(pixels).numpy()):
                    write_grid(out / f"{todo[i][0]}.h5", todo[i][0], rows)
            skipped += [(todo[i][1], err) for i, err in bad]
            bar.update(len(indices) + len(bad))
    seconds = time.perf_counter() - start
    written = len(todo) - len(skipped)
    report = write_skipped(out, shard, skipped)
    extra = {"ids_missing": len(missing), "ids_missing_examples": missing[:5]} if ids is not None else {}
    return {**extra, "images": len(inputs), "written": written, "already_done": len(inputs) - len(todo),
            "unreadable": len(skipped), "skipped_report": None if report is None else str(report),
            "seconds": round(seconds, 2), "images_per_s": round(written / seconds, 2) if seconds > 0 else None}
