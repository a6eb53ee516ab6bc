"""Loader benchmark: examples per second of the multi-task training loader, per feature layout and worker count.

Usage: ``python bench/loader.py [--n-train 128 --feat-dim 2048 --batch-size 500 --epochs 2 --workers 0 2 4
--root DIR]``. Prints one JSON line. Without ``--root`` the synthetic tree is written to a temporary folder first.
``--batch-size`` is the run's B (500: the published BART runs; the per-task sizes follow pipeline spec §3.1).
Each worker count is timed on the per-image h5 files, then the folders are packed (``vlpet.prepare.pack``, into
``--root`` too when given) and timed again on the packed arrays (keys ``h5_workersN`` / ``packed_workersN``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vlpet.data.layout import DataLayout  # noqa: E402
from vlpet.data.multitask import MultitaskLoader, build_datasets, build_loaders  # noqa: E402
from vlpet.synth.image import synth_words, write_synthetic  # noqa: E402
from vlpet.data.tokenizer import build_tokenizer  # noqa: E402
from vlpet.prepare.pack import feature_folders, pack_folder  # noqa: E402


def examples_per_second(loader: MultitaskLoader, epochs: int) -> float:
    """Iterate ``epochs`` epochs and return examples per second (worker start-up included)."""
    start, count = time.perf_counter(), 0
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for batch in loader:
            count += batch["input_ids"].shape[0]
    return count / (time.perf_counter() - start)


def bench(root: Path, batch_size: int, epochs: int, workers: list[int], layout: str) -> dict:
    """Examples per second of the train MultitaskLoader for each worker count."""
    datasets = build_datasets(DataLayout(root), build_tokenizer("bart", synth_words()), "train")
    result = {"examples_per_epoch": sum(len(ds) for ds in datasets.values())}
    for n in workers:
        loader = MultitaskLoader(build_loaders(datasets, batch_size, train=True, num_workers=n))
        result[f"{layout}_workers{n}"] = round(examples_per_second(loader, epochs), 1)
    return result


def main(argv: list[str] | None = None) -> int:
    """Parse options, write the synthetic data if needed, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", help="existing datasets root (default: write synthetic data to a temp folder)")
    parser.add_argument("--n-train", type=int, default=128)
    parser.add_argument("--feat-dim", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=500, help="run batch size B (per-task sizes follow §3.1)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root or tmp)
        if args.root is None:
            write_synthetic(root, n_train=args.n_train, n_val=1, n_test=1, feat_dim=args.feat_dim)
        result = bench(root, args.batch_size, args.epochs, args.workers, "h5")
        for folder in feature_folders(root):
            pack_folder(folder, show=False)
        result.update(bench(root, args.batch_size, args.epochs, args.workers, "packed"))
    print(json.dumps({"bench": "loader", "feat_dim": args.feat_dim, "batch_size": args.batch_size,
                      "epochs": args.epochs, "unit": "examples/s", **result}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
