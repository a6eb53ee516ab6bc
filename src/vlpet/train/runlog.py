"""The run folder and its log: ``log.txt``, ``metrics.jsonl``, TensorBoard events, wandb (main process only)."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path


def run_dir_for(args, kind: str, video: bool = False) -> Path:
    if args.output and args.output != "snap/test":
        return Path(args.output)
    name = args.run_name or time.strftime("%Y%m%d-%H%M%S")
    return Path("snap") / f"{'VLBart' if kind == 'bart' else 'VLT5'}_multitask{'_video' if video else ''}" / name


class RunLog:
    """Human log + metrics.jsonl (+ TensorBoard, + wandb when asked) on the main process."""

    def __init__(self, run_dir: Path, enabled: bool, use_wandb: bool, config: dict):
        self.dir, self.enabled = run_dir, enabled
        self.tb = self.wandb = None
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(ImportError):
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"))
        if use_wandb:
            import wandb

            self.wandb = wandb.init(project="vl-pet", name=run_dir.name, dir=str(run_dir), config=config)

    def line(self, text: str) -> None:
        if self.enabled:
            print(text, flush=True)
            with open(self.dir / "log.txt", "a") as f:
                f.write(text + "\n")

    def metrics(self, record: dict, step: int) -> None:
        if not self.enabled:
            return
        with open(self.dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
        flat = {f"{k}/{t}": v for k, sub in record.items() if isinstance(sub, dict) for t, v in sub.items()
                if number(v)}  # e.g. val/vqa, best/avg; not the video test file paths
        flat.update({k: v for k, v in record.items() if number(v)})
        if self.tb is not None:
            for key, value in flat.items():
                self.tb.add_scalar(key, value, step)
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log(flat, step=step)
