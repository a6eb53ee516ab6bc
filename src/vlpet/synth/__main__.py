"""``python -m vlpet.synth --root DIR [--video also|only] [--images DIR] [--originals RAW]``: write the synthetic tree."""

from __future__ import annotations

import argparse
import json

from . import image
from ..commands import plain
from .video import write_video_tree


def main(argv: list[str] | None = None) -> int:
    """Command line: write the synthetic tree and print one JSON line with the h5 counts."""
    parser = argparse.ArgumentParser(prog="python -m vlpet.synth", description=plain(image.__doc__.split("\n")[0]))
    parser.add_argument("--root", required=True, help="datasets root to write (created if missing)")
    for name in ("n_train", "n_val", "n_test"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=image.DEFAULTS[name],
                            help=f"images per task in the {name[2:]} split (default {image.DEFAULTS[name]})")
    parser.add_argument("--seed", type=int, default=image.DEFAULTS["seed"])
    parser.add_argument("--feat-dim", type=int, default=image.DEFAULTS["feat_dim"], help="feature size (RN101: 2048)")
    parser.add_argument("--video", choices=("no", "also", "only"), nargs="?", const="also", default="no",
                        help="also write the video tree (datasets/video, 512-d features; --feat-dim applies to the "
                             "images), or with 'only' write just the video tree")
    parser.add_argument("--images", metavar="DIR", default=None,
                        help="also render every scene as an image file under DIR/<COCO|VG|GQA|nlvr>/")
    parser.add_argument("--image-format", choices=image.IMAGE_FORMATS, default="png", help="rendered image format")
    parser.add_argument("--originals", metavar="RAW", default=None,
                        help="also write the same world as the original files (VQA v2, Karpathy, GQA 1.2, NLVR2) "
                             "below RAW, the input of python -m vlpet prepare")
    args = parser.parse_args(argv)
    result = {"root": str(args.root)}
    if args.video != "only":
        result["h5_files"] = image.write_synthetic(args.root, args.n_train, args.n_val, args.n_test, args.seed, args.feat_dim,
                                             args.images, args.image_format, args.originals)
    if args.video != "no":
        result["npz_files"] = write_video_tree(args.root, args.n_train, args.n_val, args.n_test, args.seed)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
