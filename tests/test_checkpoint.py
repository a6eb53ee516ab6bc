"""Run checkpoints: only the trained tensors, atomic writes, exact resume (issue 5 items 2, 4, 7)."""

import json
import os
import random
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import vlpet
from vlpet.config import ModelConfig, PETConfig, to_dict
from vlpet.models.build import build_model
from vlpet.pet.official import CheckpointError
from vlpet.train import checkpoint as ckpt
from vlpet.train.checkpoint import (capture_rng, latest_checkpoint, load_checkpoint, mark_latest, restore_rng,
                                    save_checkpoint, trainable_state_dict)
from vlpet.train.optim import HFAdamW, linear_warmup_schedule, param_groups
from vlpet.train.interrupts import defer_signals

B, L, V, F = 2, 6, 49, 16
MODEL_CFG = dict(backbone="tiny-bart", feat_dim=F)
PET_CFG = dict(gate="large", adapter_dim=16, gate_dim=16, vpa_dim=16)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread is fastest and stays fast when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(pet: bool = True, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(ModelConfig(**MODEL_CFG), PETConfig(**PET_CFG) if pet else None)


def _config():
    return {"model": to_dict(ModelConfig(**MODEL_CFG)), "pet": to_dict(PETConfig(**PET_CFG))}


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 900, (B, L), generator=g)
    return dict(input_ids=ids, vis_feats=torch.randn(B, V, F, generator=g), boxes=torch.rand(B, V, 4, generator=g),
                labels=ids[:, :4].contiguous())


def _perturb(model, seed: int = 1):
    """Stand-in for training: new random values in every trainable parameter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.1)


def _logits(model):
    model.eval()
    with torch.no_grad():
        return model(**_batch()).logits


def _train_steps(model, optimizer, scheduler, n: int, seed: int = 10):
    model.train()  # dropout on: the draws come from the torch RNG
    for i in range(n):
        loss = torch.nn.functional.cross_entropy(
            model(**_batch(seed + i)).logits.flatten(0, 1), _batch(seed + i)["labels"].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()


def _optim(model):
    opt = HFAdamW(param_groups(model, 0.01), lr=1e-2)
    return opt, linear_warmup_schedule(opt, total_steps=20)


def _draws():
    return random.random(), float(np.random.rand()), torch.rand(3)


def test_round_trip_gives_identical_logits(tmp_path):
    model = _model()
    _perturb(model)
    path = save_checkpoint(tmp_path / "ckpt", model, _config())
    assert path == tmp_path / "ckpt"
    assert sorted(p.name for p in path.iterdir()) == ["pet_config.json", "pet_weights.safetensors"]
    fresh = _model()
    assert not torch.equal(_logits(fresh), _logits(model))
    assert load_checkpoint(path, fresh) == {}
    assert torch.equal(_logits(fresh), _logits(model))
    meta = json.loads((path / "pet_config.json").read_text())
    assert meta["config"] == json.loads(json.dumps(_config())) and meta["vlpet_version"] == vlpet.__version__
    assert meta["saved_keys"] == list(trainable_state_dict(model))
    assert ckpt.read_checkpoint_config(path)["config"]["pet"]["gate"] == "large"


def test_only_trainable_keys_saved_and_file_small(tmp_path):
    model = _model()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert 0 < len(trainable) < len(list(model.parameters()))
    sd = trainable_state_dict(model)
    assert set(sd) == trainable
    assert set(trainable_state_dict(torch.nn.DataParallel(model))) == trainable  # wrappers' prefix dropped
    assert all(t.device.type == "cpu" and t.is_contiguous() for t in sd.values())
    path = save_checkpoint(tmp_path / "ckpt", model, _config())
    assert set(load_file(str(path / "pet_weights.safetensors"))) == trainable
    full_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert (path / "pet_weights.safetensors").stat().st_size < full_bytes / 5
    # the returned tensors are copies: changing them leaves the model alone
    next(iter(sd.values())).add_(1.0)
    assert not torch.equal(next(iter(sd.values())), next(iter(trainable_state_dict(model).values())))


def test_full_finetuning_saves_every_parameter(tmp_path):
    model = _model(pet=False)
    assert all(p.requires_grad for p in model.parameters())
    _perturb(model)
    path = save_checkpoint(tmp_path / "full", model, {"method": "full"})
    saved = load_file(str(path / "pet_weights.safetensors"))
    assert set(saved) == {n for n, _ in model.named_parameters()}  # tied weights once, under their first name
    fresh = _model(pet=False)
    load_checkpoint(path, fresh)
    assert torch.equal(_logits(fresh), _logits(model))


def test_optimizer_scheduler_rng_round_trip(tmp_path):
    model = _model()
    opt, sched = _optim(model)
    _train_steps(model, opt, sched, 3)
    state = {"epoch": 1, "step": 3, "data_position": 7, "np_int": np.int64(5)}
    path = save_checkpoint(tmp_path / "ckpt", model, _config(), state=state, optimizer=opt, scheduler=sched)
    assert (path / "trainer_state.pt").is_file()
    after_save = _draws()
    _train_steps(model, opt, sched, 3, seed=20)  # the uninterrupted continuation
    reference = trainable_state_dict(model)
    lr = sched.get_last_lr()

    fresh = _model()
    opt2, sched2 = _optim(fresh)
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    restored = load_checkpoint(path, fresh, opt2, sched2)
    assert restored == {"epoch": 1, "step": 3, "data_position": 7, "np_int": 5}
    assert sched2.last_epoch == 3
    after_load = _draws()
    assert after_load[:2] == after_save[:2] and torch.equal(after_load[2], after_save[2])
    _train_steps(fresh, opt2, sched2, 3, seed=20)
    assert sched2.get_last_lr() == lr
    resumed = trainable_state_dict(fresh)
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)


def test_capture_restore_rng():
    rng = capture_rng()
    a = _draws()
    restore_rng(rng)
    b = _draws()
    assert a[:2] == b[:2] and torch.equal(a[2], b[2])


def test_strict_errors_name_keys_and_path(tmp_path):
    model = _model()
    path = save_checkpoint(tmp_path / "ckpt", model, _config())
    saved = load_file(str(path / "pet_weights.safetensors"))
    # a model with a different VPA size: mis-shaped keys named
    torch.manual_seed(0)
    other = build_model(ModelConfig(**MODEL_CFG), PETConfig(**{**PET_CFG, "vpa_dim": 8}))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path, other)
    assert "mis-shaped" in str(e.value) and ".vpa." in str(e.value) and str(path) in str(e.value)
    # an extra trainable parameter in the model: missing; a frozen one in the checkpoint: unexpected
    model2 = _model()
    frozen = next(n for n, p in model2.named_parameters() if not p.requires_grad)
    model2.get_parameter(frozen).requires_grad_(True)
    dropped = next(iter(saved))
    model2.get_parameter(dropped).requires_grad_(False)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path, model2)
    msg = str(e.value)
    assert f"missing key(s):\n    {frozen}" in msg and f"unexpected key(s):\n    {dropped}" in msg
    # non-strict loads the common keys
    before = model2.get_parameter(frozen).detach().clone()
    assert load_checkpoint(path, model2, strict=False) == {}
    assert torch.equal(model2.get_parameter(frozen), before)


def test_crash_mid_save_keeps_previous_checkpoint_and_latest(tmp_path, monkeypatch):
    model = _model()
    first = save_checkpoint(tmp_path / "last", model, _config(), state={"step": 1})
    mark_latest(tmp_path, "last")
    good = load_file(str(first / "pet_weights.safetensors"))
    _perturb(model)

    def crash(tmp, directory, *keep):
        assert (tmp / "pet_config.json").is_file()  # the temp folder is fully written
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(ckpt, "_swap_in", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        save_checkpoint(tmp_path / "last", model, _config(), state={"step": 2})
    monkeypatch.undo()
    assert (tmp_path / "LATEST").read_text().strip() == "last"
    assert latest_checkpoint(tmp_path) == first
    kept = load_file(str(first / "pet_weights.safetensors"))
    assert all(torch.equal(kept[k], good[k]) for k in good)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LATEST", "last"]  # no temp folder left
    assert load_checkpoint(first, _model(), restore_rng_state=False) == {"step": 1}


def test_crash_between_renames_recovers_old_checkpoint(tmp_path, monkeypatch):
    """Killed after the old folder was moved aside but before the new one took its name: the old one comes back."""
    model = _model()
    save_checkpoint(tmp_path / "last", model, _config(), state={"step": 1})
    mark_latest(tmp_path, "last")
    calls, real_rename = [], ckpt.os.rename

    def rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise KeyboardInterrupt  # dies before the rollback can run
        real_rename(src, dst)

    monkeypatch.setattr(ckpt.os, "rename", rename)
    monkeypatch.setattr(ckpt, "_swap_in", lambda tmp, d, *keep: (rename(d, d.with_name(d.name + ".old-4242")),
                                                          rename(tmp, d)))
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "last", model, _config(), state={"step": 2})
    monkeypatch.undo()
    assert not (tmp_path / "last").exists() and (tmp_path / "last.old-4242").is_dir()
    assert latest_checkpoint(tmp_path) == tmp_path / "last"  # renamed back
    assert load_checkpoint(tmp_path / "last", _model(), restore_rng_state=False) == {"step": 1}


def test_overwrite_and_latest(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    model = _model()
    save_checkpoint(tmp_path / "epoch1", model, _config(), state={"epoch": 1})
    mark_latest(tmp_path, "epoch1")
    save_checkpoint(tmp_path / "epoch1", model, _config(), state={"epoch": 2})  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LATEST", "epoch1"]
    assert load_checkpoint(latest_checkpoint(tmp_path), _model(), restore_rng_state=False) == {"epoch": 2}
    with pytest.raises(CheckpointError, match="not a complete checkpoint"):
        mark_latest(tmp_path, "nope")
    with pytest.raises(ValueError):
        mark_latest(tmp_path, "../epoch1")
    (tmp_path / "LATEST").write_text("gone\n")
    with pytest.raises(CheckpointError, match="gone"):
        latest_checkpoint(tmp_path)


def test_missing_paths_are_named(tmp_path):
    with pytest.raises(CheckpointError, match=str(tmp_path / "absent")):
        load_checkpoint(tmp_path / "absent", _model())
    path = save_checkpoint(tmp_path / "ckpt", _model(), _config())
    with pytest.raises(CheckpointError, match="trainer_state.pt"):  # resuming needs the trainer state
        model = _model()
        load_checkpoint(path, model, *_optim(model))
    (path / "pet_weights.safetensors").unlink()
    with pytest.raises(CheckpointError, match=str(path / "pet_weights.safetensors")):
        load_checkpoint(path, _model())


def test_failed_swap_rolls_back(tmp_path, monkeypatch):
    """The new folder cannot take the name (rename fails, process survives): the old folder is put back."""
    model = _model()
    save_checkpoint(tmp_path / "last", model, _config(), state={"step": 1})
    calls, real_rename = [], ckpt.os.rename

    def rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise OSError("simulated rename failure")
        real_rename(src, dst)

    monkeypatch.setattr(ckpt.os, "rename", rename)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(tmp_path / "last", model, _config(), state={"step": 2})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    assert load_checkpoint(tmp_path / "last", _model(), restore_rng_state=False) == {"step": 1}


def test_stale_temp_folder_of_dead_process_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"last.tmp-{dead.pid}"
    stale.mkdir()
    (stale / "pet_weights.safetensors").write_bytes(b"half-written")
    save_checkpoint(tmp_path / "last", _model(), _config())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="POSIX signals")
def test_ctrl_c_during_save_is_held_until_checkpoint_complete(tmp_path, monkeypatch):
    model = _model()
    real_swap = ckpt._swap_in

    def swap_after_sigint(tmp, directory, *keep):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C arrives mid-save
        real_swap(tmp, directory, *keep)

    monkeypatch.setattr(ckpt, "_swap_in", swap_after_sigint)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "last", model, _config(), state={"step": 5})
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    assert load_checkpoint(tmp_path / "last", _model(), restore_rng_state=False) == {"step": 5}
    # a trainer can hold Ctrl-C over save + mark_latest
    with pytest.raises(KeyboardInterrupt):
        with defer_signals():
            os.kill(os.getpid(), signal.SIGINT)
            save_checkpoint(tmp_path / "next", model, _config(), state={"step": 6})
            mark_latest(tmp_path, "next")
    assert latest_checkpoint(tmp_path) == tmp_path / "next"
