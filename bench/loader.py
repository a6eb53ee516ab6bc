"""Loader benchmark: examples per second of the multi-task training loader, per feature layout and worker count,
against the memcpy roofline of the same machine.

Usage: ``python bench/loader.py [--n-train 6200 --feat-dim 2048 --batch-size 500 --epochs 2 --workers 0 2 4
--layouts h5 packed --root DIR]``. Prints one JSON line. Without ``--root`` the synthetic tree is written to a
temporary folder first (``--n-train 6200``: 20,150 train images, 20,179 in all, each 49 x 2048 float16 = 200 KB).
``--batch-size`` is the run's B (500: the published BART runs; the per-task sizes 500 / 833 / 166 / 416 follow
pipeline spec §3.1). Each worker count is timed on the per-image h5 files (layout ``h5``), then the folders are
packed (``vlpet.prepare.pack``, into ``--root`` too when given) and timed again on the packed arrays (``packed``);
keys ``h5_workersN`` / ``packed_workersN``, in examples/s over ``--epochs`` epochs (worker start-up included),
after one pass over the layout's feature files has put them in the page cache.

Glibc allocator: as ``bench/train_step.py``, the script re-executes itself once with ``MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=68719476736`` unless they are set or ``--no-malloc-env`` is given (``malloc_env`` in the JSON
line): a freed batch's memory is then reused for the next one instead of being unmapped and faulted in again page by
page, which would otherwise cost about as much as the copy itself. (On CUDA the loaders allocate batches in pinned
memory, whose caching allocator reuses blocks the same way.)

The roofline: ``memcpy_bytes_per_s`` is the best of ``--memcpy-reps`` copies of a ``--memcpy-mb`` buffer (one core,
numpy ``copyto``), measured in the same run; a packed example is one 49 x feat_dim float16 row (200 KB at 2048;
NLVR2 examples read two), so ``roofline_examples_per_s = memcpy_bytes_per_s / (49 * feat_dim * 2)`` and
``roofline_fraction`` gives each timing as a fraction of it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import MALLOC_ENV, ensure_malloc_env  # noqa: E402

if __name__ == "__main__":
    ensure_malloc_env(sys.argv[1:])

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vlpet.data.layout import DataLayout  # noqa: E402
from vlpet.data.multitask import MultitaskLoader, build_datasets, build_loaders  # noqa: E402
from vlpet.synth.image import synth_words, write_synthetic  # noqa: E402
from vlpet.data.tokenizer import build_tokenizer  # noqa: E402
from vlpet.prepare.pack import feature_folders, pack_folder  # noqa: E402

N_GRID = 49
LAYOUTS = ("h5", "packed")


def memcpy_bytes_per_s(megabytes: int, reps: int) -> float:
    """Best rate of ``reps`` single-threaded copies of a ``megabytes`` buffer (bytes copied per second)."""
    src = np.ones(megabytes << 20, dtype=np.uint8)
    dst = np.zeros_like(src)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return src.nbytes / best


def warm_page_cache(root: Path, layout: str) -> int:
    """Read every feature file of ``layout`` under ``root`` once (h5 files or packed arrays); returns the bytes."""
    total = 0
    pattern = "*/clip_features/*/*.h5" if layout == "h5" else "*/clip_features/*/packed/*.npy"
    for path in sorted(root.glob(pattern)):
        if path.is_file():
            with open(path, "rb") as f:
                while chunk := f.read(16 << 20):
                    total += len(chunk)
    return total


def examples_per_second(loader: MultitaskLoader, epochs: int, steps: int | None = None) -> float:
    """Iterate ``epochs`` epochs (their first ``steps`` batches when given) and return examples per second (worker
    start-up included)."""
    start, count = time.perf_counter(), 0
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for step, batch in enumerate(loader):
            if steps is not None and step == steps:
                break
            count += batch["input_ids"].shape[0]
    return count / (time.perf_counter() - start)


def bench(root: Path, batch_size: int, epochs: int, workers: list[int], layout: str, steps: int | None = None) -> dict:
    """Examples per second of the train MultitaskLoader for each worker count."""
    datasets = build_datasets(DataLayout(root), build_tokenizer("bart", synth_words()), "train")
    result = {"examples_per_epoch": sum(len(ds) for ds in datasets.values())}
    warm_page_cache(root, layout)
    for n in workers:
        loader = MultitaskLoader(build_loaders(datasets, batch_size, train=True, num_workers=n))
        result[f"{layout}_workers{n}"] = round(examples_per_second(loader, epochs, steps), 1)
        del loader  # its (persistent) workers end here, before the next count's start
    return result


def main(argv: list[str] | None = None) -> int:
    """Parse options, write the synthetic data if needed, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", help="existing datasets root (default: write synthetic data to a temp folder)")
    parser.add_argument("--n-train", type=int, default=6200, help="synthetic images per task's train split")
    parser.add_argument("--feat-dim", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=500, help="run batch size B (per-task sizes follow §3.1)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, help="time only the first STEPS batches of each epoch (default: all)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    parser.add_argument("--layouts", nargs="+", choices=LAYOUTS, default=list(LAYOUTS))
    parser.add_argument("--keep-packed", action="store_true",
                        help="with --root: reuse feature folders already packed instead of packing them again")
    parser.add_argument("--memcpy-mb", type=int, default=1024,
                        help="buffer size of the memcpy roofline (above the last-level cache: 480 MiB here)")
    parser.add_argument("--memcpy-reps", type=int, default=7)
    parser.add_argument("--no-malloc-env", action="store_true", help="run with the environment's glibc settings")
    args = parser.parse_args(argv)
    rate = memcpy_bytes_per_s(args.memcpy_mb, args.memcpy_reps)
    row_bytes = N_GRID * args.feat_dim * 2
    result = {"memcpy_bytes_per_s": round(rate), "bytes_per_example": row_bytes,
              "roofline_examples_per_s": round(rate / row_bytes, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root or tmp)
        if args.root is None:
            written = write_synthetic(root, n_train=args.n_train, n_val=1, n_test=1, feat_dim=args.feat_dim)
            result["images"] = sum(written.values())
        if "h5" in args.layouts:
            result.update(bench(root, args.batch_size, args.epochs, args.workers, "h5", args.steps))
        if "packed" in args.layouts:
            for folder in feature_folders(root):
                if not (args.keep_packed and (folder / "packed" / "ids.json").is_file()):
                    pack_folder(folder, show=False)
            result.update(bench(root, args.batch_size, args.epochs, args.workers, "packed", args.steps))
    timed = [key for key in result if key.startswith(LAYOUTS) and "_workers" in key]
    result["roofline_fraction"] = {key: round(result[key] / result["roofline_examples_per_s"], 4) for key in timed}
    print(json.dumps({"bench": "loader", "feat_dim": args.feat_dim, "batch_size": args.batch_size,
                      "epochs": args.epochs, "steps": args.steps, "unit": "examples/s", **result,
                      "malloc_env": {k: os.environ.get(k) for k in MALLOC_ENV}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
