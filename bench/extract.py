"""Extraction benchmark: images/s of the CLIP RN101 grid extractor (``vlpet.features.image``) with random weights.

Usage: ``python bench/extract.py [--n-images 32 --batch-size 8 --workers 1 --threads T --device auto --size 640x480]``.
Writes ``--n-images`` random JPEGs (COCO-sized by default) to a temporary folder, then times three things and prints
one JSON line: ``decode_images_per_s`` (open + RGB + bicubic squash + normalise, one process), ``forward_images_per_s``
(the trunk on preprocessed batches, the recipe's precision for the device, warm-up batch excluded) and
``end_to_end_images_per_s`` (``extract_images``: DataLoader decoding in workers, forward, atomic h5 writes).
``--tiny`` (a 1-block, width-8 trunk) is used by the smoke test.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from vlpet.features.image import GridExtractor, decode, extract_images, preprocess, resolve_device  # noqa: E402
from vlpet.features.resnet import ModifiedResNet  # noqa: E402


def write_images(folder: Path, n: int, size: tuple[int, int]) -> list[Path]:
    """``n`` random-noise-over-gradient JPEGs (quality 90) of ``size`` (width, height)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(0, 255, size[0], dtype=np.float32)[None, :, None]
    paths = []
    for k in range(n):
        pixels = np.clip(ramp + rng.normal(0, 40, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
        paths.append(folder / f"img_{k:06d}.jpg")
        Image.fromarray(pixels).save(paths[-1], quality=90)
    return paths


def per_second(count: int, start: float, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return round(count / (time.perf_counter() - start), 2)


def bench(args: argparse.Namespace, folder: Path) -> dict:
    paths = write_images(folder / "images", args.n_images, args.size)
    trunk = ModifiedResNet((1, 1, 1, 1), 8) if args.tiny else ModifiedResNet()
    extractor = GridExtractor(trunk, args.device)
    start = time.perf_counter()
    pixels = torch.stack([preprocess(decode(p)) for p in paths])
    result = {"decode_images_per_s": round(len(paths) / (time.perf_counter() - start), 2)}
    extractor.grid(pixels[:args.batch_size])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(paths), args.batch_size):
        extractor.grid(pixels[i:i + args.batch_size])
    result["forward_images_per_s"] = per_second(len(paths), start, extractor.device)
    summary = extract_images(folder / "images", folder / "out", extractor, args.batch_size, args.workers,
                             progress=False)
    result["end_to_end_images_per_s"] = summary["images_per_s"]
    return {**result, "written": summary["written"], "h5_bytes": (folder / "out" / f"{paths[0].stem}.h5").stat().st_size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="DataLoader decoding workers (end to end)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT of the generated JPEGs (COCO ~640x480)")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.size = tuple(int(v) for v in args.size.split("x"))
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        result = bench(args, Path(tmp))
    device = resolve_device(args.device)
    print(json.dumps({"bench": "extract", "model": "tiny" if args.tiny else "RN101", "device": str(device),
                      "dtype": "fp16 convs / fp32 BN" if device.type == "cuda" else "fp32",
                      "n_images": args.n_images, "batch_size": args.batch_size, "workers": args.workers,
                      "threads": torch.get_num_threads(), "size": list(args.size), **result,
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "torch": torch.__version__}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
