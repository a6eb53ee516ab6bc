"""--resume refuses a change of the flags that define the run (issue 20 item 4), names each, and keeps the record;
the harmless flags (RESUME_MAY_CHANGE, a larger --epochs) stay allowed; a mid-epoch resume's train loss covers the
whole epoch; a second stop signal during the stop sequence is absorbed."""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest

from test_trainer import _assert_same, _weights, argv, data  # noqa: F401  (data: the shared fixture)

from vlpet.commands.train import main as train_main
from vlpet.train import saver

FLAGS = "--tasks gqa,nlvr --dropout 0.3"


def _errors(err: str) -> str:
    """stderr without the --from_scratch warning that every run of these tiny random backbones prints."""
    return "\n".join(line for line in err.strip().splitlines() if not line.startswith("warning: --from_scratch"))


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("guard") / "run"
    assert train_main(argv(data, out, extra=FLAGS)) == 0
    return out


@pytest.mark.parametrize("change, named", [
    ("--lr 5e-2", "--lr 0.05 (the run: 0.001)"),
    ("--seed 7", "--seed 7 (the run: 3)"),
    ("--dropout 0.0", "--dropout 0.0 (the run: 0.3)"),
    ("--batch_size 3", "--batch_size 3 (the run: 6)"),
    ("--tasks vqa,gqa,nlvr", "--tasks vqa,gqa,nlvr (the run: gqa,nlvr)"),
    ("--epochs 0 --load x", "--epochs 0 (the run: 1; only a larger"),
    ("--bf16", "--bf16 on (the run: off)"),
])
def test_resume_refuses_a_changed_flag_in_one_line(data, finished, tmp_path, capsys, change, named):  # noqa: F811
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = [(run / name).read_text() for name in ("config.json", "summary.json")]
    args = argv(data, run, extra=FLAGS + " --resume")
    # later flags win: the changed values come last
    assert train_main(args + change.split()) == 2
    err = _errors(capsys.readouterr().err)
    assert len(err.splitlines()) == 1 and named in err and "--output" in err and "Traceback" not in err
    assert [(run / name).read_text() for name in ("config.json", "summary.json")] == before  # records kept


def test_resume_names_every_changed_flag(data, finished, tmp_path, capsys):  # noqa: F811
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    assert train_main(argv(data, run, extra=FLAGS + " --resume --lr 5e-2 --seed 7")) == 2
    err = capsys.readouterr().err
    assert "--lr 0.05" in err and "--seed 7" in err


def test_resume_allows_the_harmless_flags(data, finished, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    extra = (" --resume --num_workers 1 --epochs 2 --save_every_steps 2 --nan_check_every 2 --device cpu --onednn"
             " --compile_backend eager --load nowhere")
    args = [a for a in argv(data, run, extra=FLAGS + extra) if a != "--no_progress"]
    assert train_main(args) == 0
    assert json.loads((run / "config.json").read_text())["args"]["epochs"] == 2


def test_resume_allow_list_is_explicit():
    from vlpet.train.resume import RESUME_MAY_CHANGE

    assert {"num_workers", "no_progress", "wandb", "device", "resume", "output"} <= RESUME_MAY_CHANGE
    defining = {"lr", "seed", "dropout", "batch_size", "tasks", "epochs", "bf16", "tf32", "backbone", "tokenizer"}
    assert not defining & RESUME_MAY_CHANGE


def test_a_different_process_count_is_refused():
    from argparse import Namespace

    from vlpet.train.resume import resume_changes

    changes = resume_changes(Namespace(lr=1e-3), {"args": {"lr": 1e-3}, "world_size": 2}, 1)
    assert len(changes) == 1 and "NPROC=2" in changes[0]
    assert resume_changes(Namespace(lr=1e-3), {"args": {"lr": 1e-3}, "world_size": 2}, 2) == []


def test_a_second_stop_signal_during_the_stop_sequence_is_absorbed(data, finished, tmp_path, monkeypatch,  # noqa: F811
                                                                    capsys):
    """SIGTERM after step 3, then SIGINT and SIGTERM again while the position is being saved and the message
    printed: the first signal decides (exit 143, "SIGTERM"), the save completes; the resumed run ends with the
    uninterrupted run's weights and its epoch record's train loss covers all the epoch's steps."""
    from vlpet.train import main as trainer

    run = tmp_path / "run"
    original_on_step, original_save, original_stopped = (saver.StepSaver.on_step, saver.StepSaver.save_interrupted,
                                                         trainer._stopped)

    def term_after_3(self, done, step):
        original_on_step(self, done, step)
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    def save_twice_interrupted(self):
        os.kill(os.getpid(), signal.SIGINT)
        original_save(self)
        os.kill(os.getpid(), signal.SIGTERM)

    def stopped_then_interrupted(stop, runs):
        os.kill(os.getpid(), signal.SIGINT)
        return original_stopped(stop, runs)

    monkeypatch.setattr(saver.StepSaver, "on_step", term_after_3)
    monkeypatch.setattr(saver.StepSaver, "save_interrupted", save_twice_interrupted)
    monkeypatch.setattr(trainer, "_stopped", stopped_then_interrupted)
    assert train_main(argv(data, run, extra=FLAGS)) == 143
    err = capsys.readouterr().err
    assert "interrupted (SIGTERM)" in err and "SIGINT" not in err and "global step 3" in err
    assert json.loads((run / "summary.json").read_text())["status"].startswith("interrupted")
    monkeypatch.undo()
    assert train_main(argv(data, run, extra=FLAGS + " --resume")) == 0
    _assert_same(_weights(finished), _weights(run))
    first, resumed = (json.loads((r / "metrics.jsonl").read_text().splitlines()[0])["train"] for r in (finished, run))
    assert first.keys() == resumed.keys()
    for key in first:
        assert resumed[key] == pytest.approx(first[key], rel=1e-9), key
