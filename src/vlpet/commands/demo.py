"""``python -m vlpet demo``: the offline demo (synthetic data, tiny BART, VL-PET-large); the pipeline is ``vlpet.demo``."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="snap/demo", help="parent folder of the run folder (default snap/demo)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 10; 6 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a smaller, shorter run (for tests)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the run (default 42)")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default 5e-3)")
    parser.add_argument("--tasks", default=None,
                        help="comma-separated subset of vqa,gqa,nlvr,caption to train and test (default: all four)")
    parser.add_argument("--no-progress", action="store_true", help="hide the tqdm bars")



def run(args: argparse.Namespace) -> int:
    from ..demo import demo_config, parse_tasks, run_demo

    cfg = demo_config(args.epochs, args.seed, args.lr, args.quick)
    return run_demo(cfg, parse_tasks(args.tasks), args.out, show=not args.no_progress)
