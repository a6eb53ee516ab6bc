"""The two answer vocabularies, shipped as package data: LXMERT's files (``airsplay/lxmert@0db1182:data/{vqa,gqa}/``,
byte-identical in ``ylsung/VL_adapter@545fcbb:CLIP-ViL/data/``). Their answer order came from Python-2 dict iteration
and cannot be re-derived, so they are copied, never rebuilt (data-prep spec §2.3, §2.6)."""

from __future__ import annotations

from pathlib import Path

from .raw import PrepareError, StagedWrites, file_digest

PACKAGE_VOCAB = Path(__file__).with_name("vocab")
FOLDERS = {"vqa": "vqa", "gqa": "GQA"}
FILES = ("trainval_ans2label.json", "trainval_label2ans.json")
SIZES = {"vqa": 3129, "gqa": 1842}
SHA256 = {
    "vqa/trainval_ans2label.json": "ab3b0707b4c78ff28587f0131cee4d63b0e0c0d22ad82a89e809521abdc412dc",
    "vqa/trainval_label2ans.json": "e72e568a6303130f5a627db06360605ee3b306366ff463aa5153d782adc12a7d",
    "GQA/trainval_ans2label.json": "5d9d8353151c1b7bcb6e612fc532af2e7d418fa8c92056de4a4b5da2ba9fdf9a",
    "GQA/trainval_label2ans.json": "3ba2e3668760dfcfcfe40dc58711a7c551ca7da48be87a7fdd3fae9963f8264d",
}


def relative_paths(task: str) -> list[str]:
    """``vqa/trainval_*.json`` or ``GQA/trainval_*.json``."""
    return [f"{FOLDERS[task]}/{name}" for name in FILES]


def vocab_file(relative: str) -> Path:
    """The packaged copy of one vocabulary file, after checking its sha256."""
    path = PACKAGE_VOCAB / relative
    if not path.is_file() or file_digest(path) != SHA256[relative]:
        raise PrepareError(f"the packaged answer vocabulary {path} is missing or altered (sha256 must be "
                           f"{SHA256[relative]}); reinstall vlpet")
    return path


def stage_vocab(task: str, out: Path, staged: StagedWrites) -> None:
    """Stage the two vocabulary files of ``task`` (vqa or gqa) into the output tree."""
    for relative in relative_paths(task):
        staged.copy(vocab_file(relative), out / relative)
