"""``--deterministic`` (issue 20 item 5): the settings are on for the whole run and restored after it; two runs give
bit-equal weights and records on CPU; refused with --compile."""

from __future__ import annotations

import json
import os

import pytest
import torch

from vlpet.commands.train import main as train_main
from vlpet.config import SpeedConfig
from vlpet.flags.parse import make_parser, parse
from vlpet.train.speed import deterministic_mode, speed_config_from_args
from test_trainer import _assert_same, _weights, argv, data  # noqa: F401  (data: the trainer tests' fixture)


def _settings() -> dict:
    cuda = torch.backends.cuda
    return {"algorithms": torch.are_deterministic_algorithms_enabled(),
            "cublas": os.environ.get("CUBLAS_WORKSPACE_CONFIG"), "cudnn": torch.backends.cudnn.deterministic,
            "benchmark": torch.backends.cudnn.benchmark, "flash": cuda.flash_sdp_enabled(),
            "mem_efficient": cuda.mem_efficient_sdp_enabled(), "cudnn_sdp": cuda.cudnn_sdp_enabled(),
            "math": cuda.math_sdp_enabled()}


def test_deterministic_mode_sets_every_setting_and_restores_them(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = _settings()
    with deterministic_mode(True):
        inside = _settings()
    assert inside == {"algorithms": True, "cublas": ":4096:8", "cudnn": True, "benchmark": False, "flash": False,
                      "mem_efficient": False, "cudnn_sdp": False, "math": True}
    assert _settings() == before
    with deterministic_mode(False):
        assert _settings() == before


def test_the_flag_reaches_the_speed_config_and_refuses_compile(capsys):
    args = make_parser().parse_args(["--deterministic"])
    assert speed_config_from_args(args) == SpeedConfig(deterministic=True)
    with pytest.raises(SystemExit) as stop:
        parse(["--deterministic", "--compile"])
    assert stop.value.code == 2 and "--deterministic" in capsys.readouterr().err


def test_two_deterministic_runs_are_bit_equal_on_cpu(data, tmp_path, monkeypatch):  # noqa: F811
    """The trainer runs under the mode (seen from inside the training loop), the records and weights of two runs
    are equal bit for bit, and the process settings are back afterwards."""
    from vlpet.train import session

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before, seen, real = _settings(), [], session.train_epoch
    monkeypatch.setattr(session, "train_epoch", lambda *a, **k: seen.append(_settings()) or real(*a, **k))
    runs = [tmp_path / "a", tmp_path / "b"]
    for out in runs:
        assert train_main(argv(data, out, extra="--tasks gqa,nlvr --dropout 0.3 --deterministic")) == 0
    assert seen and all(s["algorithms"] and s["cublas"] == ":4096:8" and s["math"] and not s["flash"] for s in seen)
    assert _settings() == before
    _assert_same(_weights(runs[0]), _weights(runs[1]))
    records = [[json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()] for out in runs]
    assert [r.get("train") for r in records[0]] == [r.get("train") for r in records[1]]
    assert json.loads((runs[0] / "config.json").read_text())["args"]["deterministic"] is True
