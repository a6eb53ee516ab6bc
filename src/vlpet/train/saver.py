"""The run's checkpoints during training: every ``--save_every_steps``, at each epoch's end, and on a stop signal."""

from __future__ import annotations

from pathlib import Path

from .checkpoint import capture_rng, mark_latest, save_checkpoint
from .interrupts import defer_signals
from .loop import BestTracker
from .video import BEST


class StepSaver:
    """The run's checkpoints: every ``every`` optimizer steps (``--save_every_steps``), at each epoch's end, and
    when a stop signal interrupts the run. ``phase`` is "train", "validate" (the epoch is trained, not yet validated
    and saved), "saved" (the epoch's checkpoint is written) or "test". The state names the epoch and its completed
    steps (``epoch_step``), so ``--resume`` continues at the next batch, or validates a trained epoch first; the
    RNG states are those right after the last step, as an uninterrupted run had them. ``LAST`` keeps the previous
    checkpoint beside it (``LAST.prev``)."""

    def __init__(self, run_dir: Path, model, config: dict, optimizer, scheduler, tracker: BestTracker, every: int,
                 main: bool):
        self.run_dir, self.model, self.config = run_dir, model, config
        self.optimizer, self.scheduler, self.tracker = optimizer, scheduler, tracker
        self.every, self.main = every, main
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
        if not self.main:
            return
        self.rng = capture_rng()
        if self.every and step % self.every == 0 and done < self.total:
            self._save_last()

    def end_training(self, out: dict) -> None:
        self.phase, self.train_out, self.done = "validate", out, self.total

    def save_epoch(self, improved: bool) -> None:
        """The epoch's checkpoints: ``BEST`` when the selection average improved (video), then ``LAST``."""
        state = {"epoch": self.epoch, "step": self.step, "epoch_step": self.total, "tracker": self.tracker.state()}
        with defer_signals():  # a stop signal waits until the checkpoints and LATEST are all written
            if improved:  # video: a new best 4-task validation average (the official best_avg_valid_model)
                save_checkpoint(self.run_dir / BEST, self.model, self.config, state)
            save_checkpoint(self.run_dir / "LAST", self.model, self.config, state, self.optimizer, self.scheduler,
                            keep_previous=True)
            mark_latest(self.run_dir, "LAST")
            self.phase = "saved"  # inside: a signal held during the save must see it saved

    def save_interrupted(self) -> None:
        """Save the position reached, unless it is already saved (or nothing was done since the last save)."""
        if not self.main or self.phase not in ("train", "validate"):
            return
        if self.saved_at == (self.epoch, self.done, self.phase):
            return
        if self.phase == "train" and self.done == self.first:
            return
        self._save_last(self.rng)

    def _state(self) -> dict:
        state = {"epoch": self.epoch, "step": self.step, "epoch_step": self.done, "tracker": self.tracker.state(),
                 "phase": self.phase}
        if self.phase == "validate":
            state["train"] = self.train_out
        elif self.losses is not None:
            state["losses"] = self.losses.totals()
        return state

    def _save_last(self, rng=None) -> None:
        with defer_signals():
            save_checkpoint(self.run_dir / "LAST", self.model, self.config, self._state(), self.optimizer,
                            self.scheduler, rng=rng, keep_previous=True)
            mark_latest(self.run_dir, "LAST")
            self.saved_at = (self.epoch, self.done, self.phase)  # inside, for the same reason
