"""The run's checkpoints during training: every ``--save_every_steps``, at each epoch's end, and on a stop signal."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .checkpoint import capture_rng, mark_latest, restore_rng, save_checkpoint
from .interrupts import defer_signals
from .loop import BestTracker
from .video import BEST


class StepSaver:
    """The run's checkpoints: every ``every`` optimizer steps (``--save_every_steps``), at each epoch's end, and
    when a stop signal interrupts the run. ``phase`` is "train", "validate" (the epoch is trained, not yet validated
    and saved), "saved" (the epoch's checkpoint is written) or "test". The state names the epoch and its completed
    steps (``epoch_step``), so ``--resume`` continues at the next batch, or validates a trained epoch first; the
    RNG states are those right after the last step, as an uninterrupted run had them. ``LAST`` keeps the previous
    checkpoint beside it (``LAST.prev``).

    Under DDP rank 0 writes the checkpoints; at each of them every other rank writes its own RNG states beside them
    (``rng/rank<k>-step<S>-<phase>.pt``, the newest few kept), which ``restore_rank_rng`` reads on ``--resume``."""

    def __init__(self, run_dir: Path, model, config: dict, optimizer, scheduler, tracker: BestTracker, every: int,
                 main: bool, rank: int = 0, hooks=None):
        self.run_dir, self.model, self.config, self.hooks = run_dir, model, config, hooks
        self.optimizer, self.scheduler, self.tracker = optimizer, scheduler, tracker
        self.every, self.main, self.rank = every, main, rank
        self.epoch, self.first, self.done, self.total, self.step, self.rng = 0, 0, 0, 0, 0, None
        self.phase, self.train_out, self.saved_at, self.losses = "train", None, None, None

    def begin_epoch(self, epoch: int, first: int, steps_per_epoch: int, step: int, losses=None) -> None:
        """``losses``: the epoch's ``EpochLosses``; their sums go into step checkpoints (a resumed epoch's record
        then covers all its steps)."""
        self.epoch, self.first, self.done, self.total, self.step = epoch, first, first, steps_per_epoch, step
        self.phase, self.saved_at, self.losses = "train", (epoch, first, "train"), losses

    def on_step(self, done: int, step: int) -> None:
        """Called by ``train_epoch`` after each optimizer step (``done`` steps of this epoch, ``step`` in all)."""
        self.done, self.step = done, step
        self.rng = capture_rng()
        if self.every and step % self.every == 0 and done < self.total:
            if self.main:
                self._save_last()
            else:
                self._save_rank_rng(self.rng, "train")

    def end_training(self, out: dict) -> None:
        self.phase, self.train_out, self.done = "validate", out, self.total

    def save_trained(self) -> None:
        """The trained epoch before its validation (``LAST`` with phase "validate", the RNG states right after its
        last step): a validation that fails (a missing scorer, a crash, a lost node) costs no training; ``--resume``
        validates it without retraining. ``save_epoch`` then writes the validated record over it."""
        if not self.main:
            self._save_rank_rng(self.rng, self.phase)
        elif self.saved_at != (self.epoch, self.done, self.phase):
            self._save_last(self.rng)

    def save_epoch(self, improved: bool) -> None:
        """The epoch's checkpoints: ``BEST`` when the selection average improved (video), then ``LAST`` (the other
        DDP ranks: their RNG states)."""
        if not self.main:
            self._save_rank_rng(capture_rng(), "saved")
            self.phase = "saved"
            return
        state = {"epoch": self.epoch, "step": self.step, "epoch_step": self.total, "tracker": self.tracker.state(),
                 **self._tuner_state()}
        with defer_signals():  # a stop signal waits until the checkpoints and LATEST are all written
            if improved:  # video: a new best 4-task validation average (the official best_avg_valid_model)
                save_checkpoint(self.run_dir / BEST, self.model, self.config, state)
            save_checkpoint(self.run_dir / "LAST", self.model, self.config, state, self.optimizer, self.scheduler,
                            keep_previous=True)
            mark_latest(self.run_dir, "LAST")
            self.phase = "saved"  # inside: a signal held during the save must see it saved

    def save_interrupted(self) -> None:
        """Save the position reached, unless it is already saved (or nothing was done since the last save)."""
        if self.phase not in ("train", "validate"):
            return
        if self.saved_at == (self.epoch, self.done, self.phase):
            return
        if self.phase == "train" and self.done == self.first:
            return
        if self.main:
            self._save_last(self.rng)
        else:
            self._save_rank_rng(self.rng, self.phase)

    def _state(self) -> dict:
        state = {"epoch": self.epoch, "step": self.step, "epoch_step": self.done, "tracker": self.tracker.state(),
                 "phase": self.phase, **self._tuner_state()}
        if self.phase == "validate":
            state["train"] = self.train_out
        elif self.losses is not None:
            state["losses"] = self.losses.totals()
        return state

    def _tuner_state(self) -> dict:
        """AdaLoRA: the rank allocator's state, so that ``--resume`` continues the rank schedule bit for bit."""
        return {"tuner": self.hooks.state()} if self.hooks is not None else {}

    def _save_last(self, rng=None) -> None:
        with defer_signals():
            save_checkpoint(self.run_dir / "LAST", self.model, self.config, self._state(), self.optimizer,
                            self.scheduler, rng=rng, keep_previous=True)
            mark_latest(self.run_dir, "LAST")
            self.saved_at = (self.epoch, self.done, self.phase)  # inside, for the same reason

    def _save_rank_rng(self, rng, phase: str) -> None:
        """This (non-zero) rank's RNG states at the position rank 0 checkpoints now; the newest 4 files are kept."""
        if rng is None:
            return
        folder = self.run_dir / RNG_DIR
        folder.mkdir(parents=True, exist_ok=True)
        path = rank_rng_path(self.run_dir, self.rank, self.step, phase)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with defer_signals():
            torch.save(rng, tmp)
            os.replace(tmp, path)
            self.saved_at = (self.epoch, self.done, self.phase)
        for old in sorted(folder.glob(f"rank{self.rank}-step*.pt"), key=lambda p: p.stat().st_mtime)[:-4]:
            old.unlink(missing_ok=True)


RNG_DIR = "rng"


def rank_rng_path(run_dir: Path, rank: int, step: int, phase: str) -> Path:
    return Path(run_dir) / RNG_DIR / f"rank{rank}-step{step}-{phase}.pt"


def restore_rank_rng(run_dir: Path, rank: int, state: dict, seed: int) -> str | None:
    """On ``--resume`` under DDP, rank ``rank`` (> 0) restores its own RNG states saved at the checkpoint's position
    (``load_checkpoint`` set rank 0's). When they are missing (a checkpoint older than this, or an interrupt that
    reached the ranks one step apart), its streams restart from a seed derived from ``seed``, the rank and the step,
    and the returned warning says the resumed run is not bit-equal to an uninterrupted one."""
    step, phase = state.get("step", 0), state.get("phase", "saved")
    path = rank_rng_path(run_dir, rank, step, phase)
    try:
        restore_rng(torch.load(path, map_location="cpu", weights_only=True))
        return None
    except Exception:  # noqa: BLE001 - missing or unreadable: the documented fallback
        from .data import seed_everything

        seed_everything((seed * 1_000_003 + rank * 10_007 + step) % 2**32)
        return (f"warning: rank {rank}: no RNG state saved for global step {step} ({path}); its random streams "
                "restart from a seed derived from --seed, the rank and the step, so this resume is not bit-equal to "
                "an uninterrupted run")
