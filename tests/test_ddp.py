"""DDP that does not wait (issue 20 item 3), on 2-process gloo: validation and test sharded over the ranks and
gathered on rank 0 (the same scores as one process), the NaN check agreed by every rank, each rank's RNG states
saved and restored on --resume (the resumed run ends bit-equal to an uninterrupted one)."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys

import pytest
import torch

from test_trainer import SRC, _assert_same, _weights, argv, data  # noqa: F401  (data: the shared fixture)

from vlpet.commands.train import main as train_main
from vlpet.train.shard import BlockBatches, merge

FLAGS = "--tasks gqa,nlvr --dropout 0.3 --epochs 1 --batch_size 3"


@pytest.mark.parametrize("n, batch, world", [(10, 3, 2), (7, 2, 3), (2, 5, 2), (13, 4, 4), (0, 3, 2)])
def test_block_batches_split_one_process_batches_without_duplicates(n, batch, world):
    one = list(BlockBatches(n, batch))
    parts = [list(BlockBatches(n, batch, rank, world)) for rank in range(world)]
    assert [b for part in parts for b in part] == one  # the same batches, in order, each once
    assert sorted(i for b in one for i in b) == list(range(n))


def test_merge_keeps_dataset_order():
    assert merge([[1, 2], [], [3]]) == [1, 2, 3]
    assert merge([{"a": 1}, {"b": 2}]) == {"a": 1, "b": 2}


def _rank(rank: int, world: int, port: int, queue) -> None:
    import torch.distributed as dist

    from vlpet.train.loop import NonFiniteLossError, _check_finite
    from vlpet.train.shard import gather

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        out = {"gathered": gather([rank * 10, rank * 10 + 1], rank, world)}

        class Bar:
            def set_postfix(self, **kw):
                pass

        _check_finite([(0, "gqa", torch.tensor(1.0))], 0, Bar())  # finite everywhere: no error
        loss = torch.tensor(float("nan") if rank == 1 else 2.0)
        try:
            _check_finite([(4, "gqa", torch.tensor(1.0)), (5, "nlvr", loss)], 0, Bar())
            out["error"] = None
        except NonFiniteLossError as err:
            out["error"] = str(err)
        queue.put((rank, out))
    finally:
        dist.destroy_process_group()


def test_nan_check_and_gather_are_agreed_by_every_rank():
    """Rank 1's loss is NaN, rank 0's finite: both stop at the same check (rank 0 names the other process);
    gather returns every rank's predictions on rank 0 in rank order, None elsewhere."""
    ctx = multiprocessing.get_context("fork")
    queue, port = ctx.Queue(), 29541
    procs = [ctx.Process(target=_rank, args=(r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert results[0]["gathered"] == [0, 1, 10, 11] and results[1]["gathered"] is None
    assert "another DDP process" in results[0]["error"] and "step 5" in results[0]["error"]
    assert results[1]["error"].startswith("loss is nan at step 5")


KILL_AT_STEP_3 = """
import os, signal, sys
from vlpet.train import saver
original = saver.StepSaver.on_step
def on_step(self, done, step):
    original(self, done, step)
    if step == 3:
        os.kill(os.getpid(), signal.SIGKILL)
saver.StepSaver.on_step = on_step
from vlpet.commands.train import main
sys.exit(main(sys.argv[1:]))
"""


def _torchrun(args: list[str], port: int, script: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1")
    target = [script] if script else ["-m", "vlpet", "train"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}", *target,
           *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def two_process_run(data, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("ddp") / "full"
    done = _torchrun(argv(data, out, extra=FLAGS), 29542)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, json.loads(done.stdout.strip().splitlines()[-1])


def test_sharded_test_scores_equal_one_process(data, two_process_run, tmp_path, capsys):  # noqa: F811
    """The 2-process run's test (each rank its block of the batches, scored on rank 0) equals one process testing
    the same weights at the same batch size."""
    run, final = two_process_run
    assert set(final["test"]) == {"nlvr"} and set(final["val"]) == {"gqa", "nlvr"}
    assert train_main(argv(data, tmp_path / "one", extra=FLAGS.replace("--epochs 1", "--epochs 0")
                           + f" --load {run / 'LAST'}")) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["test"] == final["test"]


def test_each_rank_resumes_its_own_rng_states(data, two_process_run, tmp_path):  # noqa: F811
    """Both ranks killed after global step 3 of 8 (dropout 0.3), then --resume with 2 processes: rank 1 restores
    its own RNG states (not rank 0's), so the final weights equal the uninterrupted 2-process run's, bit for bit."""
    run, _ = two_process_run
    cut = tmp_path / "cut"
    script = tmp_path / "kill_at_3.py"
    script.write_text(KILL_AT_STEP_3)
    flags = FLAGS + " --save_every_steps 1"
    assert _torchrun(argv(data, cut, extra=flags), 29543, str(script)).returncode != 0
    assert (cut / "rng" / "rank1-step3-train.pt").is_file()
    rank1 = torch.load(cut / "rng" / "rank1-step3-train.pt", weights_only=True)
    rank0 = torch.load(cut / "LAST" / "trainer_state.pt", weights_only=True)["rng"]
    assert not torch.equal(rank0["torch"], rank1["torch"])  # the ranks' streams differ
    done = _torchrun(argv(data, cut, extra=flags + " --resume"), 29544)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "warning: rank" not in done.stderr
    _assert_same(_weights(run), _weights(cut))


def test_a_missing_rank_rng_file_is_one_warning_and_a_derived_seed(tmp_path):
    """The documented fallback: no file for the checkpoint's step → a warning naming it, streams from a seed derived
    from --seed, the rank and the step (the same on every try)."""
    from vlpet.train.saver import restore_rank_rng

    warning = restore_rank_rng(tmp_path, 1, {"step": 7, "phase": "train"}, seed=3)
    assert warning.startswith("warning: rank 1") and "rank1-step7-train.pt" in warning and "not bit-equal" in warning
    first = torch.rand(3)
    restore_rank_rng(tmp_path, 1, {"step": 7, "phase": "train"}, seed=3)
    assert torch.equal(first, torch.rand(3))
