"""The trainer under preemption, races and bad input (issue 11): stop signals at every phase, checkpoints that
never hold NaN and keep their predecessor, one run per folder, every value validated before anything is built,
one-line errors for I/O failures."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from test_trainer import SRC, _assert_same, _weights, argv, data  # noqa: F401  (data: the shared fixture)

from vlpet.train import saver, session
from vlpet.train.checkpoint import NonFiniteStateError, save_checkpoint
from vlpet.train.lock import RunLock

FLAGS = "--tasks gqa,nlvr --dropout 0.3"
REPO = Path(__file__).resolve().parents[1]


def train_main(args: list[str]) -> int:
    from vlpet.commands.train import main

    return main(args)


def _state(run: Path) -> dict:
    return torch.load(run / "LAST" / "trainer_state.pt", weights_only=True)["state"]


@pytest.fixture(scope="module")
def full_run(data, tmp_path_factory):  # noqa: F811
    """An uninterrupted 2-epoch run the interrupted ones must end equal to."""
    out = tmp_path_factory.mktemp("full") / "run"
    assert train_main(argv(data, out, epochs=2, extra=FLAGS)) == 0
    return out


def _signal_after_step(monkeypatch, sig: int, at: int) -> None:
    original = saver.StepSaver.on_step

    def send(self, done, step):
        original(self, done, step)
        if step == at:
            os.kill(os.getpid(), sig)

    monkeypatch.setattr(saver.StepSaver, "on_step", send)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGUSR1, 138)])
def test_sigterm_and_sigusr1_save_the_position_and_resume_matches(data, full_run, tmp_path, monkeypatch, capsys,
                                                                  sig, code):  # noqa: F811
    cut = tmp_path / "cut"
    _signal_after_step(monkeypatch, sig, 3)
    assert train_main(argv(data, cut, epochs=2, extra=FLAGS)) == code
    err = capsys.readouterr().err
    assert signal.Signals(sig).name in err and "--resume" in err and "global step 3" in err
    assert (_state(cut)["epoch"], _state(cut)["step"]) == (0, 3)
    monkeypatch.undo()
    assert train_main(argv(data, cut, epochs=2, extra=FLAGS + " --resume")) == 0
    _assert_same(_weights(full_run), _weights(cut))


def test_interrupt_during_validation_saves_the_trained_epoch(data, full_run, tmp_path, monkeypatch, capsys):  # noqa: F811
    cut = tmp_path / "cut"
    original = session._evaluate

    def interrupted(*a, **kw):
        os.kill(os.getpid(), signal.SIGINT)
        return original(*a, **kw)

    monkeypatch.setattr(session, "_evaluate", interrupted)
    assert train_main(argv(data, cut, epochs=2, extra=FLAGS)) == 130
    err = capsys.readouterr().err
    state = _state(cut)
    assert state["phase"] == "validate" and state["epoch"] == 0 and "epoch 1," in err and "--resume" in err
    monkeypatch.undo()
    assert train_main(argv(data, cut, epochs=2, extra=FLAGS + " --resume")) == 0
    records = [json.loads(r) for r in (cut / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if "val" in r] == [0, 1]  # epoch 0 validated once, after the resume
    _assert_same(_weights(full_run), _weights(cut))


def test_interrupt_during_the_test_says_so_and_resume_tests(data, tmp_path, monkeypatch, capsys):  # noqa: F811
    out = tmp_path / "run"
    original = session._test

    def interrupted(*a, **kw):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(session, "_test", interrupted)
    assert train_main(argv(data, out, extra="--tasks gqa,nlvr")) == 143
    assert "during the test" in capsys.readouterr().err
    monkeypatch.setattr(session, "_test", original)
    assert train_main(argv(data, out, extra="--tasks gqa,nlvr --resume")) == 0
    assert set(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["test"]) == {"nlvr"}


def test_nothing_saved_yet_is_said_and_resume_starts_over(data, tmp_path, monkeypatch, capsys):  # noqa: F811
    out = tmp_path / "run"
    _signal_after_step(monkeypatch, signal.SIGTERM, 1)
    monkeypatch.setattr(saver.StepSaver, "save_interrupted", lambda self: None)  # as if killed before any save
    assert train_main(argv(data, out, extra="--tasks gqa")) == 143
    assert "no checkpoint" in capsys.readouterr().err
    monkeypatch.undo()
    assert train_main(argv(data, out, extra="--tasks gqa --resume")) == 0
    assert "starting from the beginning" in (out / "log.txt").read_text()


def test_sigint_works_when_inherited_as_ignored(data, tmp_path):  # noqa: F811
    """A background job of a non-interactive shell starts with SIGINT ignored; the trainer installs its own."""
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "vlpet", "train",
                             *argv(data, out, epochs=3, extra="--tasks gqa --save_every_steps 1")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.time() + 300
    while not (out / "LATEST").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
    assert "--resume" in err and (out / "LAST").is_dir()


def test_nan_stop_never_saves_non_finite_weights(data, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    assert train_main(argv(data, out, extra="--tasks gqa --lr 1e30 --epochs 3 --save_every_steps 2")) == 3
    err = capsys.readouterr().err
    assert "NaN" in err or "nan" in err or "inf" in err
    if (out / "LAST").is_dir():
        assert all(torch.isfinite(t).all() for t in _weights(out).values())
        assert "the checkpoint" in err
    else:
        assert "no checkpoint" in err


def test_save_refuses_non_finite_weights(tmp_path):
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight[0, 0] = float("inf")
    with pytest.raises(NonFiniteStateError, match="weight"):
        save_checkpoint(tmp_path / "LAST", model, {})
    assert not any(tmp_path.iterdir())


def test_corrupt_last_falls_back_to_the_previous_checkpoint(data, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    assert train_main(argv(data, out, epochs=2, extra="--tasks gqa")) == 0
    assert (out / "LAST.prev").is_dir()
    weights = out / "LAST" / "pet_weights.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-8:] = b"\x00" * 8  # a flipped tail: still parses, the recorded sha256 catches it
    weights.write_bytes(bytes(raw))
    assert train_main(argv(data, out, epochs=3, extra="--tasks gqa --resume")) == 0
    log = (out / "log.txt").read_text()
    # LAST.prev holds the last epoch as saved before its validation: the fallback validates it again, loses nothing
    assert "corrupt" in log and "LAST.prev" in log and "(epoch 2, step 2/2" in log


def test_corrupt_last_without_previous_is_one_line_with_advice(data, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    assert train_main(argv(data, out, extra="--tasks gqa")) == 0
    shutil.rmtree(out / "LAST.prev")  # the epoch's pre-validation checkpoint, kept beside LAST
    (out / "LAST" / "pet_weights.safetensors").write_bytes(b"garbage")
    assert train_main(argv(data, out, epochs=2, extra="--tasks gqa --resume")) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "--output" in err and "Traceback" not in err


def test_one_run_per_folder(data, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    with RunLock(out):
        assert train_main(argv(data, out, extra="--tasks gqa")) == 2
    err = capsys.readouterr().err
    assert f"pid {os.getpid()}" in err and not (out / "config.json").exists()
    assert train_main(argv(data, out, extra="--tasks gqa")) == 0  # released


def test_files_follow_the_umask(data, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    old = os.umask(0o022)
    try:
        assert train_main(argv(data, out, extra="--tasks gqa")) == 0
    finally:
        os.umask(old)
    for name in ("pet_weights.safetensors", "trainer_state.pt", "pet_config.json"):
        assert (out / "LAST" / name).stat().st_mode & 0o777 == 0o644, name
    assert (out / "log.txt").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("flag, value, words", [
    ("--batch_size", "0", "positive"), ("--batch_size", "-3", "positive"), ("--epochs", "-2", "0 or more"),
    ("--save_every_steps", "-1", "save_every_steps"), ("--lr", "-1e-3", "positive"), ("--lr", "nan", "positive"),
    ("--num_workers", "-1", "0 or more"), ("--warmup_ratio", "2", "[0, 1]"), ("--epochs", "0", "--load"),
    ("--clip_grad_norm", "nan", "finite"), ("--seed", "-1", "2**32"),
])
def test_bad_values_are_one_line_before_anything_is_built(data, tmp_path, capsys, flag, value, words):  # noqa: F811
    out = tmp_path / "run"
    assert train_main([*argv(data, out), flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and flag in err and len(err.splitlines()) == 1 and not out.exists()


def test_flag_error_is_short_with_a_suggestion(capsys):
    assert train_main(["--lrr", "1e-3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "did you mean --lr?" in err[0] and "--help" in err[1]


def test_help_and_flag_errors_do_not_import_torch():
    code = ("import sys; from vlpet.commands.train import main; rc = main(['--nope']); "
            "rc2 = main(['--method', 'vl-pet-large', '--use_lora']); "  # two methods: refused at parse time
            "assert 'torch' not in sys.modules, 'torch imported'; print(rc, rc2)")
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=SRC), capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.strip() == "2 2", done.stderr


def _copy_data(data: Path, tmp_path: Path) -> Path:  # noqa: F811
    import shutil

    root = tmp_path / "data"
    shutil.copytree(data / "data", root)
    return root


def _with_root(args: list[str], root: Path) -> list[str]:
    args[args.index("--datasets_root") + 1] = str(root)
    return args


def test_empty_validation_split_is_named_before_training(data, tmp_path, capsys):  # noqa: F811
    root = _copy_data(data, tmp_path)
    (root / "GQA" / "testdev.json").write_text("[]")
    out = tmp_path / "run"
    assert train_main(_with_root(argv(data, out, extra="--tasks gqa,nlvr"), root)) == 2
    err = capsys.readouterr().err
    assert "gqa" in err and "testdev.json" in err and "empty" in err and not out.exists()


def test_feature_dimension_mismatch_is_one_line(data, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    assert train_main(argv(data, out, extra="--tasks gqa --feat_dim 64")) == 2
    err = capsys.readouterr().err
    assert "--feat_dim 64" in err and "32 channels" in err and "Traceback" not in err and not out.exists()


def test_feature_file_of_the_wrong_shape_is_one_line(data, tmp_path, capsys):  # noqa: F811
    root = _copy_data(data, tmp_path)
    for path in (root / "VG").rglob("*.h5"):
        img = path.stem
        with h5py.File(path, "w") as f:
            f[f"{img}/features"] = np.zeros((10, 32), dtype=np.float16)
    assert train_main(_with_root(argv(data, tmp_path / "run", extra="--tasks gqa"), root)) == 2
    err = capsys.readouterr().err
    assert "shape (10, 32)" in err and "Traceback" not in err


def test_missing_tokenizer_path_is_one_line(data, tmp_path, capsys):  # noqa: F811
    args = argv(data, tmp_path / "run", extra="--tasks gqa")
    args[args.index("--tokenizer") + 1] = str(tmp_path / "no-tokenizer")
    assert train_main(args) == 2
    err = capsys.readouterr().err
    assert "no-tokenizer does not exist" in err and "Traceback" not in err


def test_offline_hub_backbone_says_how_to_download(data, tmp_path):  # noqa: F811
    args = [a for a in argv(data, tmp_path / "run", extra="--tasks gqa") if a != "--from_scratch"]
    args[args.index("--backbone") + 1] = "facebook/bart-base"
    env = dict(os.environ, PYTHONPATH=SRC, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    done = subprocess.run([sys.executable, "-m", "vlpet", "train", *args], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and "hf download facebook/bart-base" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("content", [b"not a checkpoint", b"PK\x03\x04truncated"])
def test_load_of_a_bad_file_is_one_line(data, tmp_path, capsys, content):  # noqa: F811
    bad = tmp_path / "model.pth"
    bad.write_bytes(content)
    assert train_main(argv(data, tmp_path / "run", extra=f"--tasks gqa --load {bad}")) == 2
    err = capsys.readouterr().err
    assert "model.pth" in err and "Traceback" not in err


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs a read-only /sys")
def test_read_only_output_folder_is_one_line(data, capsys):  # noqa: F811
    assert train_main(argv(data, Path("/sys/vlpet-run"), extra="--tasks gqa")) == 74
    err = capsys.readouterr().err
    assert "/sys/vlpet-run" in err and "Traceback" not in err


def test_disk_full_keeps_the_previous_checkpoint(data, tmp_path, monkeypatch, capsys):  # noqa: F811
    import safetensors.torch as st

    out = tmp_path / "run"
    real, calls = st.save_file, []

    def full_disk(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", filename)
        real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(st, "save_file", full_disk)
    assert train_main(argv(data, out, epochs=2, extra="--tasks gqa")) == 74
    err = capsys.readouterr().err
    assert "No space left on device" in err and "epoch 1," in err
    assert _state(out)["epoch"] == 0 and load_file(str(out / "LAST" / "pet_weights.safetensors"))


def test_nothing_in_the_project_reads_the_shared_folder():
    """A user's clone has no shared/ folder beside it: every fixture the tests read is in tests/fixtures/."""
    sibling = "../" + "shared"
    files = subprocess.run(["git", "ls-files", "src", "tests", "scripts", "bench", ".ci"], cwd=REPO,
                           capture_output=True, text=True).stdout.split()
    if not files:
        pytest.skip("not a git checkout")
    hits = [f for f in files if Path(f).suffix in (".py", ".sh", "") and (REPO / f) != Path(__file__)
            and sibling in (REPO / f).read_text(errors="ignore")]
    assert not hits


def test_signal_during_the_epoch_save_keeps_record_and_checkpoint_together(data, tmp_path, monkeypatch,
                                                                            capsys):  # noqa: F811
    """SIGTERM arriving while the epoch's checkpoint is written waits for it: the epoch is complete (record and
    checkpoint), and --resume goes on with the next epoch without validating this one again."""
    out = tmp_path / "run"
    real = saver.mark_latest

    def mark_then_term(run_dir, name):
        real(run_dir, name)
        if (Path(run_dir) / "metrics.jsonl").is_file() and not getattr(mark_then_term, "sent", False):
            mark_then_term.sent = True
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(saver, "mark_latest", mark_then_term)
    assert train_main(argv(data, out, epochs=2, extra="--tasks gqa")) == 143
    state = _state(out)
    assert "phase" not in state and state["epoch"] == 0  # an epoch-end checkpoint, not a "validate" one
    assert "epoch 1," in capsys.readouterr().err
    monkeypatch.undo()
    assert train_main(argv(data, out, epochs=2, extra="--tasks gqa --resume")) == 0
    records = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if "val" in r] == [0, 1]
