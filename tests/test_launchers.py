"""The launchers keep the trainer's exit code and its one-line message (issue 20 item 4): a bad flag is exit 2 in
one line (one or several processes); SIGTERM to the launcher reaches the trainer, which saves and exits 143, and a
second SIGTERM 0.1 s later changes nothing (the SLURM requeue recipe of docs/distributed.md relies on both)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from test_trainer import SRC, data  # noqa: F401  (data: the shared fixture)

from vlpet.train.launch import exit_code

LAUNCHER = Path(__file__).resolve().parents[1] / "scripts" / "image-text" / "VL-PET-large.sh"
POSITIONAL = "16 4 16 16 1e-3 42".split()


def _extra(data: Path, out: Path, more: str = "") -> list[str]:  # noqa: F811
    return (f"--backbone tiny-bart --from_scratch --tokenizer {data / 'tok-bart'} --datasets_root {data / 'data'} "
            f"--feat_dim 32 --batch_size 6 --train_topk 12 --valid_topk 2 --num_workers 0 --tasks gqa "
            f"--output {out} --no_progress {more}").split()


def _errors(err: str) -> str:
    """stderr without the --from_scratch warning that every run of these tiny random backbones prints."""
    return "\n".join(line for line in err.strip().splitlines() if not line.startswith("warning: --from_scratch"))


def _env(**extra) -> dict:
    return dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1", **extra)


@pytest.mark.parametrize("nproc", ["1", "2"])
def test_a_bad_flag_through_the_launcher_is_exit_2_in_one_line(tmp_path, nproc):
    done = subprocess.run(["bash", str(LAUNCHER), "29551", *POSITIONAL, "--lr", "-1"], env=_env(NPROC=nproc),
                          capture_output=True, text=True, timeout=120)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1 and "--lr -1" in err[0] and "positive" in err[0], done.stderr


def test_sigterm_to_the_launcher_saves_and_exits_143_and_a_second_one_is_absorbed(data, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    proc = subprocess.Popen(["bash", str(LAUNCHER), "29552", *POSITIONAL,
                             *_extra(data, out, "--epochs 50 --save_every_steps 1")],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (out / "LATEST").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted (SIGTERM)") and "--resume" in last and "Traceback" not in err


def test_torchrun_failures_map_to_rank_0s_exit_code():
    from types import SimpleNamespace as F

    assert exit_code({0: F(exitcode=143, timestamp=2), 1: F(exitcode=1, timestamp=1)}) == 143
    assert exit_code({1: F(exitcode=2, timestamp=1)}) == 2
    assert exit_code({0: F(exitcode=-9, timestamp=1)}) == 137
    assert exit_code({}) == 1


@pytest.mark.skipif(not os.environ.get("VLPET_SLOW"), reason="opt-in (VLPET_SLOW=1): a 2-process torchrun run, "
                    "~10 s of CPU; the exit-code mapping is tested above")
def test_two_processes_sigterm_to_the_launcher_exits_143(data, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    proc = subprocess.Popen(["bash", str(LAUNCHER), "29553", *POSITIONAL,
                             *_extra(data, out, "--epochs 50 --save_every_steps 1 --batch_size 3")],
                            env=_env(NPROC="2"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (out / "LATEST").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)  # absorbed by torchrun's handler while the ranks save and stop
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-3000:]
    assert "interrupted (SIGTERM)" in err and "Traceback" not in err and "ChildFailedError" not in err


def _hub_args(data: Path, out: Path, backbone: str, tokenizer: str | None) -> list[str]:  # noqa: F811
    from test_trainer import argv

    args = [a for a in argv(data, out, extra="--tasks gqa") if a != "--from_scratch"]
    args[args.index("--backbone") + 1] = backbone
    if tokenizer is None:
        i = args.index("--tokenizer")
        del args[i:i + 2]
    else:
        args[args.index("--tokenizer") + 1] = tokenizer
    return args


def test_an_unreachable_hub_fails_at_once_in_one_line(data, tmp_path, monkeypatch, capsys):  # noqa: F811
    """Not in the cache, not offline by the environment, but the hub cannot be reached (a closed local port): one
    line within seconds, before huggingface_hub's retries (23-90 s of messages before)."""
    import socket

    from vlpet.commands.train import main as train_main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    start = time.time()
    assert train_main(_hub_args(data, tmp_path / "run", "facebook/bart-base", None)) == 2
    err = _errors(capsys.readouterr().err)
    assert time.time() - start < 20 and len(err.splitlines()) == 1
    assert "cannot be reached" in err and "hf download facebook/bart-base" in err and not (tmp_path / "run").exists()


@pytest.mark.parametrize("backbone", ["tiny-bart", "bart-base"])
def test_a_preset_as_tokenizer_gets_no_hf_download_advice(data, tmp_path, capsys, backbone):  # noqa: F811
    from vlpet.commands.train import main as train_main

    assert train_main(_hub_args(data, tmp_path / "run", backbone, None) + ["--from_scratch"]) == 2
    err = _errors(capsys.readouterr().err)
    assert len(err.splitlines()) == 1 and "preset" in err and "--tokenizer" in err and "hf download" not in err
    assert ("facebook/bart-base" in err) == (backbone == "bart-base")
