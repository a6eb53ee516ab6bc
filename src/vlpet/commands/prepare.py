"""``python -m vlpet prepare ...``: convert the original files, download them, check a tree.

  prepare {vqa,gqa,nlvr,caption,all} --raw RAW --out ROOT   originals (found by name below RAW) → the datasets tree
  prepare download {vqa,gqa,nlvr,caption,weights} --to RAW [--dry-run] [--no-images]
  prepare download archive --to DIR [--dry-run]        the VL-Adapter release from the Hub (ylsung/VL-Adapter-datasets)
  prepare archive --snapshot DIR --out ROOT [--layout packed|h5] [--tasks ...]   that release → the datasets tree
  prepare check --root ROOT [--tasks vqa,gqa,nlvr,caption] [--no-features] [--strict]
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from . import plain

CONVERTERS = ("vqa", "gqa", "nlvr", "caption")
DOWNLOADS = ("vqa", "gqa", "nlvr", "caption", "weights", "archive")


def _convert_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--raw", required=True, help="folder holding the original files (anywhere below it)")
    parser.add_argument("--out", required=True, help="datasets root to write (created if missing)")
    if name in ("vqa", "caption", "all"):
        parser.add_argument("--karpathy-fallback", action="store_true",
                            help="rebuild dataset_coco.json (its host is gone) from BLIP's coco_karpathy_{val,test}"
                                 ".json and COCO's captions_{train,val}2014.json: same splits, not byte-identical")
    if name in ("vqa", "all"):
        from ..prepare.vqa import DEFAULT_TOPK_RULE, TOPK_RULES

        parser.add_argument("--topk-optimal", choices=TOPK_RULES, default=DEFAULT_TOPK_RULE,
                            help="definition of is_topk_optimal on karpathy_test (unpublished; the summary counts "
                                 f"all three; default {DEFAULT_TOPK_RULE})")
        parser.add_argument("--with-answers", action="store_true",
                            help="also keep the 10 raw 'answers' in each VQA record (read only by --raw_label)")
    parser.set_defaults(prepare_run=run_convert, tasks=CONVERTERS if name == "all" else (name,))


def _download_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", choices=DOWNLOADS)
    parser.add_argument("--to", required=True, help="RAW folder to download into (files go to RAW/<source>/; "
                                                     "archive: the snapshot folder itself)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be fetched and its size")
    parser.add_argument("--no-images", action="store_true", help="annotations only (skip the image archives)")
    parser.set_defaults(prepare_run=run_download)


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, help="datasets root to check")
    parser.add_argument("--tasks", default=",".join(CONVERTERS), help="comma-separated subset of " +
                        ",".join(CONVERTERS))
    parser.add_argument("--sample", type=_count, default=16, help="feature files opened per folder (default 16)")
    parser.add_argument("--no-features", action="store_true", help="check the annotations only")
    parser.add_argument("--strict", action="store_true",
                        help="deviations from the published release (counts, vocabulary sha256, feature dtype/size) "
                             "are problems too")
    parser.set_defaults(prepare_run=run_check)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``prepare`` sub-commands."""
    sub = parser.add_subparsers(dest="prepare_command", required=True)
    for name in (*CONVERTERS, "all"):
        text = "every annotation file" if name == "all" else f"the {name} annotation files"
        _convert_arguments(sub.add_parser(name, help=f"write {text} from the originals", allow_abbrev=False), name)
    _download_arguments(sub.add_parser("download", help="fetch the original files", allow_abbrev=False))
    _check_arguments(sub.add_parser("check", help="check a datasets tree", allow_abbrev=False))
    _pack_arguments(sub.add_parser("pack", help="one memory-mappable feature array per feature folder",
                                   allow_abbrev=False))
    _archive_arguments(sub.add_parser("archive", help="the VL-Adapter release (Hub snapshot) → the datasets tree",
                                      allow_abbrev=False))


def _archive_arguments(parser: argparse.ArgumentParser) -> None:
    from ..prepare import archive

    archive.add_arguments(parser)
    parser.set_defaults(prepare_run=archive.run)


def _pack_arguments(parser: argparse.ArgumentParser) -> None:
    from ..prepare import pack

    pack.add_arguments(parser)
    parser.set_defaults(prepare_run=pack.run)


def main(argv: list[str]) -> int:
    """``python -m vlpet prepare ARGS``; a user mistake is one ``error:`` line and exit status 2."""
    from ..prepare.raw import PrepareError

    parser = argparse.ArgumentParser(prog="python -m vlpet prepare", description=plain(__doc__), allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    previous = _catch_sigterm()
    try:
        return args.prepare_run(args)
    except (PrepareError, OSError) as err:  # bad input, or a folder that cannot be written (permissions, full disk)
        from ..features.files import disk_message

        print(f"error: {disk_message(err) if isinstance(err, OSError) else err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Terminated) as err:
        how = "SIGTERM" if isinstance(err, Terminated) else "Ctrl-C (SIGINT)"
        print(f"error: stopped by {how}; this run's temporary files were removed and finished outputs kept (a "
              "download or archive conversion resumes where it stopped): run the same command again", file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every ``finally`` / ``__exit__`` removes its temporary files."""


def _raise_terminated(signum, frame):
    raise Terminated()


def _catch_sigterm():
    """Turn SIGTERM into ``Terminated`` (main thread only); returns the previous handler, or None."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def run_convert(args: argparse.Namespace) -> int:
    """Convert the selected sources; every output is renamed into place only when all are written."""
    from ..prepare import caption, gqa, karpathy, nlvr, vqa
    from ..prepare.raw import RawIndex, StagedWrites, remove_stale_staged

    index, out = RawIndex(args.raw, exclude=args.out), Path(args.out)
    for path in remove_stale_staged(out):
        print(f"removed {path} (left by a killed prepare run)")
    fallback = getattr(args, "karpathy_fallback", False)
    steps = {"vqa": lambda s: vqa.prepare_vqa(index, out, s, args.topk_optimal, args.with_answers, fallback),
             "gqa": lambda s: gqa.prepare_gqa(index, out, s), "nlvr": lambda s: nlvr.prepare_nlvr(index, out, s),
             "caption": lambda s: caption.prepare_caption(index, out, s, fallback)}
    locators = {"vqa": vqa, "gqa": gqa, "nlvr": nlvr, "caption": karpathy}
    for task in args.tasks:  # every original is found before any work starts
        locators[task].locate(index, fallback)
    lines = []
    with StagedWrites() as staged:
        for task in args.tasks:
            lines += steps[task](staged)
    print("\n".join(lines + [f"wrote {out}"]))
    return 0


def run_download(args: argparse.Namespace) -> int:
    from ..prepare.download import download_archive, download_source

    if args.source == "archive":
        return download_archive(Path(args.to), dry_run=args.dry_run)
    return download_source(args.source, Path(args.to), dry_run=args.dry_run, images=not args.no_images)


def run_check(args: argparse.Namespace) -> int:
    from ..prepare.check import check_tree

    return check_tree(Path(args.root), [t for t in args.tasks.split(",") if t], sample=args.sample,
                      features=not args.no_features, strict=args.strict)
