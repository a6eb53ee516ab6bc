"""Fenced code blocks of the markdown docs, with the marker comment that precedes each (tests/test_docs.py,
tests/test_extending.py).

Markers (an HTML comment on the line right before the opening fence):
  <!-- file: PATH -->     the block is the whole text of the repository file PATH;
  <!-- excerpt: PATH -->  each run of lines between `...` lines occurs, contiguously, in PATH;
  <!-- test -->           a Python block that the tests execute (in order, one namespace per page).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
_MARKER = re.compile(r"^<!--\s*(file|excerpt|test)\s*:?\s*(\S*)\s*-->\s*$")


@dataclass
class Block:
    lang: str
    text: str
    line: int  # 1-based line of the opening fence
    marker: str | None = None
    target: str | None = None


def blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.groups()
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        body = [ln[len(indent):] if ln.startswith(indent) else ln for ln in lines[i + 1:j]]
        marker = _MARKER.match(lines[i - 1].strip()) if i > 0 else None
        found.append(Block(lang, "\n".join(body) + "\n", i + 1, *(marker.groups() if marker else (None, None))))
        i = j + 1
    return found


def check_against_repository(block: Block) -> str | None:
    """None when a file/excerpt block matches the repository, else what differs."""
    target = ROOT / block.target
    if not target.is_file():
        return f"{block.target} does not exist"
    text = target.read_text(encoding="utf-8")
    if block.marker == "file":
        return None if block.text == text else f"the block differs from {block.target}"
    chunks = re.split(r"^\.\.\.\n", block.text, flags=re.M)
    missing = [c for c in chunks if c.strip() and c not in text]
    return f"not in {block.target}: {missing[0]!r}" if missing else None
