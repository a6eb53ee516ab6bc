"""``python -m vlpet demo``: the whole pipeline offline on 2 CPU cores in a few minutes.

Writes the synthetic dataset (``vlpet.synth.image``) into a fresh run folder, builds the word-level BART tokenizer
from its words, pretrains a tiny BART as a text-only denoising language model (as BART itself was pretrained; the
hub's weights cannot be downloaded offline), saves it as a local backbone folder, loads it with ``from_pretrained``
and injects VL-PET-large, prints the official Params line, trains VQA, GQA, NLVR2 and COCO caption together with the
official optimizer, schedule and losses on the frozen backbone, validates every epoch, tests at the end and writes
``snap/demo/<timestamp>/``: ``log.txt``, ``metrics.jsonl``, ``config.json``, ``learning_curve.png`` (when
matplotlib is installed), and what a run of one's own reuses offline: ``data/`` (the synthetic datasets tree),
``tokenizer/`` and ``backbone/`` (``--tokenizer``, ``--backbone`` of ``train``) and ``LAST/`` (the trained VL-PET
checkpoint, for ``predict --checkpoint``). The log ends with the ``train`` command that trains on them. Paths in
the files are absolute. The last stdout line is one JSON object
``{"run_dir": …, "test": {task: score}, "chance": {task: score}}``; ``chance`` is the best constant guess
(majority answer / label on the test split, CIDEr of the most frequent training caption).

The pretraining sees text only: the training questions, NLVR2 statements and caption sentences and the vocabulary's
words; never an image, a question paired with its answer or a statement with its label. Everything that ties the
images to the answers is learned by the PET modules, the visual embedding and the encoder layer norms, as in the
paper. The demo uses generous PET sizes for its tiny model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import ModelConfig, PETConfig, to_dict
from .data.layout import DataLayout
from .data.multitask import MultitaskLoader, build_datasets, build_loaders
from .synth.image import synth_words, write_synthetic
from .data.tokenizer import build_tokenizer
from .models.build import build_model
from .pet.trainable import count_parameters, percentage_line
from .tasks import get_task
from .train.loop import evaluate, train_epoch
from .train.checkpoint import save_checkpoint
from .train.device import DeviceLoader
from .train.optim import HFAdamW, linear_warmup_schedule, param_groups
from .train.summary import DEMO_BACKBONE, RunSummary, records_status

TASKS = ("vqa", "gqa", "nlvr", "caption")
TABLE_NAMES = {"vqa": "VQAv2", "gqa": "GQA", "nlvr": "NLVR2", "caption": "COCO CIDEr"}


@dataclasses.dataclass
class DemoConfig:
    """Sizes and hyper-parameters of the demo (tuned so that the full run takes about 3 minutes on 2 CPU cores)."""

    epochs: int = 10
    n_train: int = 160
    n_val: int = 32
    n_test: int = 48
    feat_dim: int = 256
    batch_size: int = 24
    lr: float = 5e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    clip: float = 5.0
    seed: int = 42
    d_model: int = 128
    ffn_dim: int = 256
    layers: int = 2
    decoder_layers: int = 2
    init_std: float = 0.02
    # Text-only denoising pretraining of the backbone (30% of the word tokens masked; masked text -> text).
    pretrain_steps: int = 300
    pretrain_batch: int = 64
    pretrain_lr: float = 2e-3
    mask_prob: float = 0.3
    adapter_dim: int = 128
    gate_dim: int = 128
    vpa_dim: int = 128
    num_heads: int = 4


# The short config (tests): with VQA and GQA alone (``--tasks vqa,gqa``) about a minute on 2 cores.
QUICK = dict(epochs=6, n_train=128, n_val=32, n_test=32, pretrain_steps=150)


def parse_tasks(text: str | None) -> tuple[str, ...]:
    """The tasks of ``--tasks`` in the canonical order (all four when not given)."""
    if text is None:
        return TASKS
    wanted = {t.strip() for t in text.split(",") if t.strip()}
    unknown = wanted - set(TASKS)
    if unknown or not wanted:
        raise ValueError(f"--tasks takes a comma-separated subset of {','.join(TASKS)}, got {text!r}")
    return tuple(t for t in TASKS if t in wanted)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pretraining_texts(train_sets: dict) -> list[str]:
    """The text inputs of the training examples (questions, statements, captions) and the vocabulary's words and
    phrases (``synth_words``, as a pretrained LM knows every word): no question is paired with its answer, no
    statement with its label, no text with an image."""
    texts = [d["sent"] for dataset in train_sets.values() for d in dataset.data]
    vocabulary = [text for text in synth_words() if text.strip()]
    return texts + vocabulary * max(1, len(texts) // (4 * len(vocabulary)))


@contextlib.contextmanager
def _quiet_hub_bars():
    """No transformers progress bars for saving / loading the demo's tiny backbone."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def pretrain_backbone(cfg: DemoConfig, tokenizer, arch: dict, texts: list[str], out: Path, log,
                      show: bool = False) -> Path:
    """Pretrain the tiny BART on ``texts`` as a denoising LM (masked text -> text), save it to ``out``.

    Stands in for the hub's pretrained weights: PET adapts a *pretrained* frozen backbone, and a random one gives
    the PET modules almost nothing to steer. Returns ``out`` (a ``from_pretrained`` folder)."""
    from .models.presets import build_lm

    lm, _, _ = build_lm("tiny-bart", False, 0.1, "sdpa", arch)
    lm.train()
    optimizer = torch.optim.AdamW(lm.parameters(), lr=cfg.pretrain_lr)
    rng = random.Random(cfg.seed)
    mask_id = tokenizer.convert_tokens_to_ids(tokenizer.mask_token)
    specials = torch.tensor(sorted(tokenizer.all_special_ids))
    tic, loss = time.perf_counter(), torch.tensor(float("nan"))
    log(f"pretraining the tiny BART backbone on {len(texts)} training texts (text only) ...")
    for _ in tqdm(range(cfg.pretrain_steps), desc="pretrain backbone", disable=not show, leave=False,
                  dynamic_ncols=True):
        enc = tokenizer(rng.sample(texts, min(cfg.pretrain_batch, len(texts))), padding=True, return_tensors="pt")
        labels = enc.input_ids.masked_fill(enc.attention_mask == 0, -100)
        words = ~torch.isin(enc.input_ids, specials)
        noisy = enc.input_ids.masked_fill(words & (torch.rand(enc.input_ids.shape) < cfg.mask_prob), mask_id)
        loss = lm(input_ids=noisy, attention_mask=enc.attention_mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    with _quiet_hub_bars():
        lm.save_pretrained(out)
    log(f"backbone: tiny BART (d_model {cfg.d_model}, {cfg.layers}+{cfg.decoder_layers} layers) pretrained as a "
        f"text-only denoising LM, {cfg.pretrain_steps} steps, final loss {loss.item():.3f} "
        f"[{time.perf_counter() - tic:.0f}s] -> {out}")
    return out


def chance_scores(test_loaders: dict, train_sets: dict) -> dict[str, float]:
    """The best constant guess on the test split of each task, scored by the same metric."""
    chance = {}
    for task, loader in test_loaders.items():
        data = loader.dataset.data
        if task in ("vqa", "gqa"):
            candidates = {a for d in data for a in d["label"]}
            guesses = [{(d["question_id"]): a for d in data} for a in sorted(candidates)]
        elif task == "nlvr":
            guesses = [{d["identifier"]: label for d in data} for label in (0, 1)]
        else:
            common = Counter(d["sent"] for d in train_sets["caption"].data).most_common(1)[0][0]
            guesses = [{d["img_id"]: common for d in data}]
        chance[task] = max(get_task(task).score(guess, loader) for guess in guesses)
    return chance


def plot_curve(history: list[dict], path: Path) -> str:
    """Write the learning curve (train loss, validation scores); returns a note for the log."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no learning-curve PNG (pip install matplotlib)"
    epochs = [h["epoch"] + 1 for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [h["train"]["loss"] for h in history], marker="o", label="all")
    for task in TASKS:
        key = f"loss_{task}"
        if all(key in h["train"] for h in history):
            ax1.plot(epochs, [h["train"][key] for h in history], marker=".", label=task)
    ax1.set(xlabel="epoch", ylabel="train loss", title="training loss")
    ax1.legend()
    accuracy = [task for task in history[0]["val"] if task != "caption"]
    for task in accuracy:
        ax2.plot(epochs, [h["val"][task] for h in history], marker="o", label=TABLE_NAMES[task])
    ax2.set(xlabel="epoch", ylabel="accuracy (%)", title="validation")
    handles, labels = ax2.get_legend_handles_labels()
    if "caption" in history[0]["val"]:  # CIDEr x100 has another range: its own axis on the right
        cider = ax2.twinx()
        cider.plot(epochs, [h["val"]["caption"] for h in history], marker="s", linestyle="--", color="tab:red",
                   label=TABLE_NAMES["caption"] + " (right axis)")
        cider.set_ylabel("CIDEr x100")
        more = cider.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax2.legend(handles, labels, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"learning curve: {path}"


def results_table(test: dict, chance: dict, val_best: dict) -> str:
    """A Table-2-style block: one row per task, test score, best-guess chance and best validation score."""
    rows = [f"{'Task':<12}{'Test':>9}{'Chance':>9}{'Best val':>10}"]
    for task in TASKS:
        if task in test:
            note = " (testdev)" if task == "gqa" else ""
            rows.append(f"{TABLE_NAMES[task]:<12}{test[task]:>9.2f}{chance[task]:>9.2f}"
                        f"{val_best.get(task, float('nan')):>10.2f}{note}")
    avg = sum(test.values()) / len(test)
    rows.append(f"{'Avg.':<12}{avg:>9.2f}{sum(chance.values()) / len(chance):>9.2f}")
    return "\n".join(rows)


def checkpoint_config(cfg: DemoConfig, model_cfg: ModelConfig, pet_cfg: PETConfig, run_dir: Path) -> dict:
    """The trainer's checkpoint config for the demo's model, so that ``predict --checkpoint <run>`` reads it."""
    args = {"seed": cfg.seed, "tokenizer": str(run_dir / "tokenizer"), "backbone": model_cfg.backbone,
            "datasets_root": str(run_dir / "data"), "num_beams": 5, "gen_max_length": 20,
            "use_tasks_prompts": True, "fix_gqa_prompt": False, "feat_dim": cfg.feat_dim, "method": "vl-pet-large"}
    return {"model": to_dict(model_cfg), "pet": to_dict(pet_cfg), "args": args}


def train_command(cfg: DemoConfig, run_dir: Path, tasks: tuple[str, ...]) -> str:
    """``python -m vlpet train`` on the demo's data, tokenizer and backbone with VL-PET-large at the demo's sizes."""
    return (f"python -m vlpet train --method vl-pet-large --backbone {run_dir / 'backbone'} "
            f"--tokenizer {run_dir / 'tokenizer'} --datasets_root {run_dir / 'data'} --feat_dim {cfg.feat_dim} "
            f"--tasks {','.join(tasks)} --adapter_down_dim {cfg.adapter_dim} --adapter_gating_down_dim "
            f"{cfg.gate_dim} --decoder_enc_attn_value_parallel_adapter_down_dim {cfg.vpa_dim} --lr {cfg.lr} "
            f"--batch_size {cfg.batch_size} --epochs {cfg.epochs} --num_workers 0 --seed {cfg.seed} "
            f"--output snap/my_run")


def demo_config(epochs: int | None = None, seed: int | None = None, lr: float | None = None,
                quick: bool = False) -> DemoConfig:
    """The demo's configuration: the defaults, ``QUICK`` when ``quick``, then the given overrides."""
    overrides = {k: v for k, v in (("epochs", epochs), ("seed", seed), ("lr", lr)) if v is not None}
    cfg = DemoConfig(**{**(QUICK if quick else {}), **overrides})
    if cfg.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {cfg.epochs}")
    return cfg


@records_status
def run_demo(cfg: DemoConfig, tasks: tuple[str, ...] = TASKS, out: str | Path = "snap/demo",
             show: bool = True) -> int:
    """Write the synthetic data, pretrain the tiny backbone, train / validate / test VL-PET-large on it, under a
    fresh ``<out>/<timestamp>/`` run folder; prints the results table and one JSON line."""
    start = time.perf_counter()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    run_dir = Path(out).absolute() / datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    run_dir.mkdir(parents=True)
    log_file = (run_dir / "log.txt").open("w")

    def log(line: str = "") -> None:
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    seed_everything(cfg.seed)
    data_root = run_dir / "data"
    write_synthetic(data_root, n_train=cfg.n_train, n_val=cfg.n_val, n_test=cfg.n_test, seed=cfg.seed,
                    feat_dim=cfg.feat_dim)
    tokenizer = build_tokenizer("bart", synth_words())
    tokenizer.save_pretrained(run_dir / "tokenizer")
    log(f"run folder: {run_dir}")
    layout = DataLayout(data_root)
    train_sets = build_datasets(layout, tokenizer, "train", tasks)
    cpu = torch.device("cpu")  # the loaders hand over float16 features; DeviceLoader widens them for the model

    def eval_loaders(phase: str) -> dict:
        loaders = build_loaders(build_datasets(layout, tokenizer, phase, tasks), cfg.batch_size, train=False)
        return {task: DeviceLoader(loader, cpu) for task, loader in loaders.items()}

    train_loader = DeviceLoader(MultitaskLoader(build_loaders(train_sets, cfg.batch_size, train=True), cfg.seed), cpu)
    val_loaders, test_loaders = eval_loaders("val"), eval_loaders("test")
    if "gqa" in tasks:
        test_loaders["gqa"] = val_loaders["gqa"]  # GQA has no test phase officially: report testdev
    test_loaders = {task: test_loaders[task] for task in tasks}

    arch = dict(vocab_size=len(tokenizer) - 200, d_model=cfg.d_model, encoder_layers=cfg.layers,
                decoder_layers=cfg.decoder_layers, encoder_ffn_dim=cfg.ffn_dim, decoder_ffn_dim=cfg.ffn_dim,
                init_std=cfg.init_std)
    backbone = pretrain_backbone(cfg, tokenizer, arch, pretraining_texts(train_sets), run_dir / "backbone", log,
                                 show)
    seed_everything(cfg.seed)
    model_cfg = ModelConfig(backbone=str(backbone), pretrained=True, vocab_size=len(tokenizer),
                            feat_dim=cfg.feat_dim)
    pet_cfg = PETConfig(method="vl-pet", gate="large", adapter_dim=cfg.adapter_dim, num_heads=cfg.num_heads,
                        gate_dim=cfg.gate_dim, vpa_dim=cfg.vpa_dim)
    with _quiet_hub_bars():
        model = build_model(model_cfg, pet_cfg)
    config = {"demo": dataclasses.asdict(cfg), "model": to_dict(model_cfg), "pet": to_dict(pet_cfg),
              "tasks": list(tasks), "data_root": str(data_root)}
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))
    log(percentage_line(*count_parameters(model)))
    summary = RunSummary.begin(run_dir, "demo", config, count_parameters(model), cfg.seed, DEMO_BACKBONE)
    sizes = ", ".join(f"{t} {len(d)}" for t, d in train_sets.items())
    log(f"train examples: {sizes}; {len(train_loader)} steps per epoch, {cfg.epochs} epochs")

    optimizer = HFAdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, eps=1e-6)
    total = len(train_loader) * cfg.epochs
    scheduler = linear_warmup_schedule(optimizer, total, cfg.warmup_ratio)
    history, best, step = [], {}, 0
    with (run_dir / "metrics.jsonl").open("w") as metrics:
        for epoch in range(cfg.epochs):
            train_loader.set_epoch(epoch)
            tic = time.perf_counter()
            train = train_epoch(model, train_loader, optimizer, scheduler, cfg.clip, epoch, step, show)
            step = train.pop("step")
            train_s, eval_s = round(time.perf_counter() - tic, 2), {}
            val = evaluate(model, val_loaders, tokenizer, timings=eval_s)
            for task, value in val.items():
                if task not in best or value > best[task]:
                    best[task] = value
            record = {"epoch": epoch, "step": step, "lr": scheduler.get_last_lr()[0], "train": train, "val": val,
                      "train_s": train_s, "eval_s": eval_s,
                      "elapsed_s": round(time.perf_counter() - start, 1)}
            history.append(record)
            metrics.write(json.dumps(record) + "\n")
            metrics.flush()
            vals = "  ".join(f"{t} {v:.2f}" for t, v in val.items())
            log(f"epoch {epoch + 1}/{cfg.epochs}  loss {train['loss']:.4f}  val: {vals}  "
                f"[{record['elapsed_s']:.0f}s]")
        test = evaluate(model, test_loaders, tokenizer)
        chance = chance_scores(test_loaders, train_sets)
        metrics.write(json.dumps({"test": test, "chance": chance}) + "\n")
    save_checkpoint(run_dir / "LAST", model, checkpoint_config(cfg, model_cfg, pet_cfg, run_dir),
                    {"epoch": cfg.epochs - 1, "step": step})
    log(plot_curve(history, run_dir / "learning_curve.png"))
    log()
    log(results_table(test, chance, best))
    log()
    log(f"total time {time.perf_counter() - start:.1f}s")
    log(f"train on this data yourself (offline): {train_command(cfg, run_dir, tasks)}")
    log_file.close()
    summary.close("finished")
    print(json.dumps({"run_dir": str(run_dir), "test": {t: round(v, 2) for t, v in test.items()},
                      "chance": {t: round(v, 2) for t, v in chance.items()}}))
    return 0
