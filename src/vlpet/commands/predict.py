"""``python -m vlpet predict``: answer, caption or judge new inputs with a trained checkpoint (``vlpet.predict``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..predict import IMAGE_TASKS, PredictError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint folder (RUN/BEST, RUN/LAST), a run "
                                                            "folder (its BEST, else its LAST), a folder `vlpet export` "
                                                            "wrote, or its Hub repo id (owner/name)")
    parser.add_argument("--task", required=True, choices=IMAGE_TASKS)
    parser.add_argument("--question", "--statement", dest="question", default=None,
                        help="the VQA/GQA question or the NLVR2 statement")
    for n in ("", "2"):
        which = "the second image (nlvr)" if n else "the image"
        parser.add_argument(f"--image{n}", default=None, help=f"a photo of {which} (needs the CLIP extractor)")
        parser.add_argument(f"--features{n}", default=None, help=f"features of {which}: <img_id>.h5 or .npy (49, F)")
    parser.add_argument("--batch", default=None, help="a .jsonl file: one record per line with image/features "
                                                      "(image2/features2 for nlvr), question/statement, optional id")
    parser.add_argument("--batch_size", type=int, default=16)
    clip = parser.add_mutually_exclusive_group()
    clip.add_argument("--clip-weights", dest="clip_weights", default=None, help="CLIP RN101 weights file (--image)")
    clip.add_argument("--clip-pretrained", dest="clip_pretrained", action="store_true",
                      help="the published CLIP RN101 weights from the hub (--image)")
    parser.add_argument("--backbone", default=None, help="backbone weights (hub id or local directory) instead of "
                                                         "the checkpoint's")
    parser.add_argument("--tokenizer", default=None, help="tokenizer (hub id or folder) instead of the run's")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--onednn", action="store_true",
                        help="CPU: the model's Linear layers through oneDNN (faster; fp32-rounding-equal, see README)")


def run(args: argparse.Namespace) -> int:
    from ..hub_export import resolve
    from ..predict import FeatureSource, Predictor, check_record, checkpoint_folder, read_batch

    if args.batch_size <= 0:
        raise PredictError(f"--batch_size must be positive, got {args.batch_size}")
    records = read_batch(Path(args.batch)) if args.batch else [single_record(args)]
    for record in records:
        check_record(record, args.task, args.batch)
    predictor = Predictor.load(checkpoint_folder(resolve(args.checkpoint)), args.backbone, args.tokenizer, args.device)
    if args.onednn:
        from ..config import SpeedConfig
        from ..train.speed import apply_model_options

        apply_model_options(predictor.model, SpeedConfig(onednn=True), predictor.device)
    features = FeatureSource(predictor.feat_dim, args.clip_weights, args.clip_pretrained, args.device)
    for start in range(0, len(records), args.batch_size):
        chunk = records[start:start + args.batch_size]
        predictions = predictor.predict(args.task, chunk, features)
        for record, prediction in zip(chunk, predictions):
            print(json.dumps({**record, "prediction": prediction}) if args.batch else prediction, flush=True)
    return 0


def single_record(args: argparse.Namespace) -> dict:
    record = {key: getattr(args, key) for key in ("image", "features", "image2", "features2", "question")}
    return {k: v for k, v in record.items() if v is not None}
