"""``python -m vlpet extract``: CLIP features of an image or video folder, in the layout the loaders read.

Images (CLIP RN101 ``layer4`` grid; docs/data.md)::

    python -m vlpet extract --images DIR --out FEAT_DIR --model RN101 (--weights FILE | --pretrained)
        [--device auto] [--batch-size 32] [--workers 2] [--shard K/N]

writes ``FEAT_DIR/<img_id>.h5`` (``<img_id>/features`` (49, 2048) float16) for every image below DIR (recursive;
``img_id`` = the file name up to its first dot). Videos (CLIP ViT-B/32 frames every 1.5 s; docs/video.md)::

    python -m vlpet extract --video --videos DIR --out DIR [--model openai/clip-vit-base-patch32] [...]

writes ``<out>/<vid_name>.npz`` (``features`` (T, 512) float16). Both resume (complete outputs are skipped; writes
are atomic), list unreadable inputs in ``<out>/skipped.txt`` and in the summary (one JSON line on stdout), and split
the work with ``--shard K/N`` (K = 0..N-1; shards are disjoint and together cover every input).
The public TVQA/TVC annotations and TV subtitles are converted by ``python -m vlpet.features.value_convert``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import plain

IMAGE_MODELS = ("RN101",)
VIDEO_MODEL = "openai/clip-vit-base-patch32"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = plain(__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", metavar="DIR", help="image folder (walked recursively)")
    source.add_argument("--videos", metavar="DIR", help="video folder (walked recursively); needs --video")
    parser.add_argument("--video", action="store_true", help="extract video frame features (with --videos)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created; existing outputs kept)")
    parser.add_argument("--model", default=None,
                        help=f"images: {'/'.join(IMAGE_MODELS)} (default); videos: a transformers CLIP model id "
                             f"or local folder (default {VIDEO_MODEL})")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--weights", metavar="FILE",
                         help="images: local OpenAI-format CLIP state dict (visual.* keys; .pt/.pth/.bin/.safetensors)")
    weights.add_argument("--pretrained", action="store_true",
                         help="images: fetch OpenAI's RN101 weights from the hub (timm/resnet101_clip.openai)")
    parser.add_argument("--frames-fps", type=float, default=None, metavar="FPS",
                        help="videos: each folder of frame images below --videos is one video shot at FPS frames/s "
                             "(TVQA's frames_hq: 3); vid_name = the folder name")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1 ...")
    parser.add_argument("--batch-size", type=int, default=32, help="images (or video frames) per forward")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes decoding the inputs")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads on CPU (default: torch's; on a busy machine 1 can be faster)")
    parser.add_argument("--shard", metavar="K/N", default=None, help="process shard K of N (K = 0..N-1)")
    parser.add_argument("--ids-from", nargs="+", metavar="FILE", default=None,
                        help="images: only the ids these files name (the loaders' annotation JSONs, e.g. "
                             "datasets/GQA/train.json, dataset_coco.json, or a text file with one id per line)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_arguments(args: argparse.Namespace) -> None:
    """Combinations argparse cannot express; a bad one is a ValueError (one line, exit 2)."""
    if args.video != (args.videos is not None):
        raise ValueError("--video goes with --videos DIR (and --images without --video)")
    if args.frames_fps is not None and (not args.video or args.frames_fps <= 0):
        raise ValueError("--frames-fps takes a positive rate and goes with --video")
    if args.batch_size < 1 or args.workers < 0 or (args.threads is not None and args.threads < 1):
        raise ValueError("--batch-size and --threads must be >= 1 and --workers >= 0")
    source = args.images if args.images is not None else args.videos
    if not Path(source).is_dir():
        raise ValueError(f"{'--images' if args.images is not None else '--videos'} folder not found: {source}")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out {args.out} exists and is not a folder")
    if args.images is not None:
        if (args.model or "RN101") not in IMAGE_MODELS:
            raise ValueError(f"--model {args.model}: image features are made with {', '.join(IMAGE_MODELS)} only")
        if args.weights is None and not args.pretrained:
            raise ValueError("image extraction needs --weights FILE (an OpenAI-format CLIP state dict) or --pretrained")
    elif args.weights is not None or args.pretrained:
        raise ValueError("--weights/--pretrained are for --images; videos take --model (a transformers CLIP model)")
    if args.video and args.ids_from:
        raise ValueError("--ids-from goes with --images")


def run(args: argparse.Namespace) -> int:
    from ..features.files import parse_shard

    from ..features.files import disk_message, read_ids

    check_arguments(args)
    shard = parse_shard(args.shard)
    ids = read_ids(args.ids_from) if args.ids_from else None
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.images is not None:
        from ..features.image import GridExtractor, extract_images

        extractor = GridExtractor.load(args.weights, args.pretrained, args.device)
        try:
            summary = extract_images(args.images, args.out, extractor, args.batch_size, args.workers, shard,
                                     progress=not args.no_progress, ids=ids)
        except OSError as err:  # a full disk: the temp file of the image being written is already gone
            raise ValueError(disk_message(err)) from None
        summary["weights"] = extractor.weights
    else:
        from ..features.video import FrameEncoder, extract_videos

        encoder = FrameEncoder.load(args.model or VIDEO_MODEL, args.device)
        summary = extract_videos(args.videos, args.out, encoder, args.batch_size, args.workers, shard,
                                 progress=not args.no_progress, frames_fps=args.frames_fps)
    print(json.dumps(summary))
    if summary.get("ids_missing"):
        print(f"warning: {summary['ids_missing']} id(s) of --ids-from have no image below {args.images}, e.g. "
              f"{', '.join(summary['ids_missing_examples'])}; the loaders need a feature file for every id",
              file=sys.stderr)
    if summary["unreadable"]:
        print(f"warning: {summary['unreadable']} unreadable input(s) skipped, listed in {summary['skipped_report']}; "
              f"the loaders need a feature file for every id", file=sys.stderr)
    return 0
