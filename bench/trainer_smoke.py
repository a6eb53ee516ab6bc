"""The trainer end to end on a device, killed with SIGKILL mid-epoch and resumed (issue 20 item 9).

Usage: ``python bench/trainer_smoke.py --root DIR [--device cuda] [--n-train 512] [--feat-dim 2048]
[--extra "--bf16 --num_workers 4"] [--deterministic auto|no]``. Writes synthetic data (``vlpet.synth``: per-image h5
files, so the loader really opens files) and a tokenizer under DIR, then runs ``python -m vlpet train`` (tiny-bart,
VL-PET-large flags, VQA + GQA + NLVR2, 2 epochs, step checkpoints): once uninterrupted, once killed with SIGKILL as
soon as its first step checkpoint exists and resumed with ``--resume``. One JSON line per pair: exit codes, seconds,
whether the resumed run's final weights equal the uninterrupted run's bit for bit, and the largest difference. With
``--deterministic auto`` a second pair runs with the trainer's ``--deterministic`` when the trainer has that flag.
Captions are left out (their scorer needs Java).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

FLAGS = ("--use_adapter --use_single_adapter --no_encoder_adapter --use_adapter_down_dim "
         "--use_encoder_adapter_down_multihead --adapter_down_dim 16 --encoder_adapter_multihead_num_head 4 "
         "--unfreeze_encoder_layer_norms --no_decoder_adapter --use_decoder_enc_attn_value_parallel_adapter_down_dim "
         "--decoder_enc_attn_value_parallel_adapter_down_dim 16 --use_encoder_adapter_gating_large_x_lowrank "
         "--adapter_gating_down_dim 16")


def trainer_has(flag: str) -> bool:
    out = subprocess.run([sys.executable, "-m", "vlpet", "train", "--help"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    return flag in out.stdout


def argv(args, data: Path, out: Path, extra: str) -> list[str]:
    return (f"--backbone tiny-bart --from_scratch --tokenizer {data / 'tok'} --datasets_root {data / 'data'} "
            f"--feat_dim {args.feat_dim} --epochs 2 --batch_size {args.batch_size} --lr 1e-3 --warmup_ratio 0.1 "
            f"--use_tasks_prompts --n_boxes 36 --downsample --output {out} --seed 3 --no_progress "
            f"--tasks vqa,gqa,nlvr --save_every_steps 2 --device {args.device} --valid_topk 64 {FLAGS} "
            f"{args.extra} {extra}").split()


def run(cmd: list[str], kill_when: Path | None = None, timeout: float = 240) -> tuple[int, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    start = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "vlpet", "train", *cmd], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    if kill_when is not None:
        while not kill_when.exists() and proc.poll() is None and time.time() - start < timeout:
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    if proc.returncode not in (0, -9):
        print(err[-3000:], file=sys.stderr)
    return proc.returncode, round(time.time() - start, 1)


def pair(args, data: Path, name: str, extra: str) -> dict:
    from safetensors.torch import load_file

    full, cut = Path(args.root) / f"{name}-full", Path(args.root) / f"{name}-cut"
    rc_full, s_full = run(argv(args, data, full, extra))
    rc_kill, s_kill = run(argv(args, data, cut, extra), kill_when=cut / "LATEST")
    rc_resume, s_resume = run(argv(args, data, cut, extra + " --resume"))
    row = {"bench": "trainer_smoke", "pair": name, "device": args.device, "extra": (args.extra + " " + extra).strip(),
           "rc_full": rc_full, "rc_killed": rc_kill, "rc_resumed": rc_resume, "s_full": s_full,
           "s_killed": s_kill, "s_resumed": s_resume}
    try:
        a, b = (load_file(str(d / "LAST" / "pet_weights.safetensors")) for d in (full, cut))
        row["same_keys"] = a.keys() == b.keys()
        row["equal"] = row["same_keys"] and all(bool((a[k] == b[k]).all()) for k in a)
        diffs = [float((a[k].float() - b[k].float()).abs().max()) for k in a] if row["same_keys"] else []
        row["max_abs_diff"] = max(diffs) if diffs else None
    except (OSError, RuntimeError) as err:
        row["error"] = str(err)[:300]
    return row


def main(argv_=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--n-train", type=int, default=512)
    p.add_argument("--feat-dim", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--extra", default="", help="more trainer flags, e.g. \"--bf16 --num_workers 4\"")
    p.add_argument("--deterministic", choices=("auto", "no"), default="auto")
    args = p.parse_args(argv_)
    from vlpet.data.tokenizer import build_tokenizer
    from vlpet.synth.image import synth_words, write_synthetic

    data = Path(args.root)
    start = time.time()
    write_synthetic(data / "data", n_train=args.n_train, n_val=16, n_test=16, seed=0, feat_dim=args.feat_dim)
    build_tokenizer("bart", synth_words()).save_pretrained(data / "tok")
    print(json.dumps({"bench": "trainer_smoke_data", "n_train": args.n_train, "feat_dim": args.feat_dim,
                      "s": round(time.time() - start, 1)}), flush=True)
    print(json.dumps(pair(args, data, "default", "")), flush=True)
    if args.deterministic == "auto":
        if trainer_has("--deterministic"):
            print(json.dumps(pair(args, data, "deterministic", "--deterministic")), flush=True)
        else:
            print(json.dumps({"bench": "trainer_smoke", "pair": "deterministic",
                              "skipped": "the trainer has no --deterministic"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
