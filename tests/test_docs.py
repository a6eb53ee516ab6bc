"""The docs hold: every relative link in README.md, docs/*.md, datasets/README.md and bench/README.md resolves (the
file, and a #fragment to a heading by GitHub's anchor rules); the README's first two commands are the two published
ones; every `python -m vlpet …` line and launcher line shown in a code block parses as written (no flag or argument
that the command does not take); every subcommand named has a working --help; the `params` examples print the
percentages shown; the `--dry-run` commands run offline; the Python blocks marked `<!-- test -->` run. Nothing here
trains or downloads.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import subprocess
import unicodedata
from pathlib import Path

import pytest
from doc_blocks import ROOT, blocks

PAGES = sorted([ROOT / "README.md", ROOT / "datasets" / "README.md", ROOT / "bench" / "README.md",
                *(ROOT / "docs").glob("*.md")])
FIRST_COMMANDS = ["pip install -r requirements.txt -e . && python -m vlpet demo",
                  "pip install -r requirements.txt -e . && python -m pytest -q"]
SHELL_LANGS = ("", "bash", "sh", "shell", "console")
# Help texts and docs cite only what the repository holds: no sections of specs kept elsewhere, no line numbers of
# the upstream code (a published paper's section, "the DoRA paper's §4.3", is a citation anyone can follow).
OUTSIDE_REFERENCES = re.compile(r"(?<!paper's )(?<!paper )§|\bspec\b|\b\w+\.py:\d+")


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _prose(text: str) -> str:
    """The page without its fenced code blocks (their lines blanked, so line numbers stay)."""
    out, fence = [], None
    for line in text.splitlines():
        m = re.match(r"^\s*(```+|~~~+)", line)
        if fence is None and m:
            fence = m.group(1)
            out.append("")
        elif fence is not None:
            out.append("")
            if line.strip().startswith(fence):
                fence = None
        else:
            out.append(line)
    return "\n".join(out)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text lower-cased, every character but letters, marks, numbers,
    connector punctuation (_), spaces and hyphens removed, spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").lower()
    kept = "".join(c for c in text if c in " -" or unicodedata.category(c)[0] in "LMN" or unicodedata.category(c) == "Pc")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in _prose(page.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(page: Path) -> list[tuple[int, str]]:
    """(line, target) of every markdown link outside code blocks and inline code."""
    found = []
    for number, line in enumerate(_prose(page.read_text(encoding="utf-8")).splitlines(), 1):
        line = re.sub(r"`[^`]*`", "", line)
        found += [(number, m.group(1)) for m in re.finditer(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", line)]
    return found


def test_slug_follows_github():
    assert slug("Metrics and `vlpet evaluate`") == "metrics-and-vlpet-evaluate"
    assert slug("Fidelity: what is reproduced, and every deliberate deviation") == \
        "fidelity-what-is-reproduced-and-every-deliberate-deviation"
    assert slug("How an example is built (as the official `src/video/*_data.py` do)") == \
        "how-an-example-is-built-as-the-official-srcvideo_datapy-do"
    assert slug("Reproducing a table: Params %, seeds, reports") == "reproducing-a-table-params--seeds-reports"


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_relative_link_resolves(page):
    problems = []
    for number, target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto: … are not checked offline
            continue
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            problems.append(f"{_rel(page)}:{number}: {target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            problems.append(f"{_rel(page)}:{number}: {target}: no heading with that anchor in {dest.name}")
    assert not problems, "\n".join(problems)


def test_every_docs_page_is_linked_from_the_readme():
    readme = {(ROOT / t.partition("#")[0]).resolve() for _, t in links(ROOT / "README.md")}
    assert not [p.name for p in (ROOT / "docs").glob("*.md") if p.resolve() not in readme and p.name != "README.md"]


def test_the_readmes_first_two_commands():
    readme = ROOT / "README.md"
    first = [b.text.strip() for b in blocks(readme)[:2]]
    assert first == FIRST_COMMANDS
    # .ci/run runs the first line that matches this, verbatim
    ci = [ln for ln in readme.read_text(encoding="utf-8").splitlines() if re.match(r"^pip install .*pytest", ln)]
    assert ci[0] == FIRST_COMMANDS[1]
    assert len(readme.read_text(encoding="utf-8").splitlines()) <= 250


# ---------------------------------------------------------------------------------------------------------------
# Commands shown in code blocks

def shell_lines() -> list[tuple[str, str]]:
    """(where, command) for every command in the shell blocks: continuations joined, comments dropped, each side of
    `&&` / `||` / `|` its own command, leading VAR=value assignments and `srun` removed."""
    found = []
    for page in PAGES:
        for block in blocks(page):
            if block.lang not in SHELL_LANGS or block.marker:
                continue
            text = re.sub(r"\\\n\s*", " ", block.text)
            for offset, line in enumerate(text.splitlines()):
                line = line.strip()
                if not line or line.startswith(("#", "$ ", ">")) or "…" in line or "..." in line:  # placeholders
                    continue
                try:
                    words = shlex.split(line, comments=True)
                except ValueError:
                    continue
                command: list[str] = []
                redirected = False
                for word in words + ["&&"]:
                    if word in (">", ">>", "<", "2>", "2>&1"):  # a redirection: its target is not an argument
                        redirected = True
                    elif word in ("&&", "||", "|", ";"):
                        while command and re.match(r"^[A-Z_][A-Z0-9_]*=", command[0]):
                            command.pop(0)
                        if command[:1] == ["srun"]:
                            command.pop(0)
                        if command:
                            found.append((f"{_rel(page)}:{block.line + 1 + offset}", shlex.join(command)))
                        command, redirected = [], False
                    elif not redirected:
                        command.append(word)
    return found


def vlpet_commands() -> list[tuple[str, list[str]]]:
    out = []
    for where, line in shell_lines():
        words = shlex.split(line)
        if words[:3] == ["python", "-m", "vlpet"] and not any("$" in w or "<" in w for w in words):
            out.append((where, [w for w in words[3:] if not (w.startswith("[") or w.endswith("]"))]))
    return out


class _Parsed(Exception):
    pass


def _parse_only(argv: list[str]) -> str | None:
    """Run `python -m vlpet ARGV` up to its (outermost) parse_args; None when it parses, else the error."""
    from vlpet.__main__ import main

    real = argparse.ArgumentParser.parse_args

    def stop_after_parsing(self, args=None, namespace=None):
        real(self, args, namespace)
        raise _Parsed

    err = io.StringIO()
    argparse.ArgumentParser.parse_args = stop_after_parsing
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(list(argv))
        return f"returned {code} without parsing: {err.getvalue().strip()}"
    except _Parsed:
        return None
    except SystemExit as stop:
        return f"exit {stop.code}: {err.getvalue().strip()}"
    finally:
        argparse.ArgumentParser.parse_args = real


def test_every_vlpet_command_in_the_docs_parses_as_written():
    commands = vlpet_commands()
    assert len(commands) > 20
    problems = [f"{where}: python -m vlpet {shlex.join(argv)}: {why}"
                for where, argv in commands if argv and argv[0] != "--help" and (why := _parse_only(argv))]
    assert not problems, "\n".join(problems)


def test_every_subcommand_named_in_the_docs_has_help():
    from vlpet.__main__ import main

    prose = "".join(p.read_text(encoding="utf-8") for p in PAGES)
    named = set(re.findall(r"python -m vlpet ([a-z]+)\b", prose))
    assert {"train", "demo", "params", "evaluate", "prepare", "extract", "predict", "report"} <= named
    named |= {f"prepare {sub}" for sub in re.findall(r"python -m vlpet prepare ([a-z]+)\b", prose)}
    for command in sorted(named):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            try:
                code = main([*command.split(), "--help"])
            except SystemExit as stop:
                code = stop.code
        assert code == 0 and "usage:" in out.getvalue(), command
        assert not OUTSIDE_REFERENCES.findall(out.getvalue()), f"{command} --help cites what the repository lacks"


def test_the_params_examples_print_what_the_docs_show():
    """`python -m vlpet params …   # X.XX%` or followed by `# Trainable param percentage: …` lines."""
    from vlpet.__main__ import main

    cases = []
    for page in PAGES:
        for block in blocks(page):
            lines = block.text.splitlines()
            for i, line in enumerate(lines):
                if not line.startswith("python -m vlpet params"):
                    continue
                command, _, comment = line.partition("#")
                following = lines[i + 1].lstrip("# ").strip() if i + 1 < len(lines) else ""
                expected = following if following.startswith("Trainable param percentage:") else comment.strip()
                if expected:
                    cases.append((f"{_rel(page)}:{block.line + 1 + i}", shlex.split(command)[3:], expected))
    assert len(cases) >= 4
    for where, argv, expected in cases:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(argv) == 0, where
        first = out.getvalue().splitlines()[0]
        assert (first == expected if expected.startswith("Trainable") else f" {expected}" in f"{first} "), \
            f"{where}: {first!r} is not {expected!r}"


def test_the_dry_run_commands_run_offline(tmp_path, monkeypatch):
    """Commands shown with --dry-run do their work offline (they only read the package's manifest); the archive's
    dry run lists the Hub repository, so it needs the network and is left out."""
    from vlpet.__main__ import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dry = [(where, argv) for where, argv in vlpet_commands() if "--dry-run" in argv and "archive" not in argv]
    assert dry
    for where, argv in dry:
        with contextlib.redirect_stdout(io.StringIO()) as out:
            assert main(argv) == 0, where
        assert "to fetch" in out.getvalue() and not any(tmp_path.iterdir()), where


def test_every_launcher_line_passes_its_flags_to_the_trainer():
    """`bash scripts/…sh ARGS` (and the launcher of `bash scripts/seeds.sh LAUNCHER ARGS`) with the arguments shown:
    the launcher accepts them, and the trainer parses what it passes on."""
    from vlpet.flags.parse import join_negative_values, make_parser

    parser = make_parser()
    seen = 0
    for where, line in shell_lines():
        words = shlex.split(line)
        if words[:1] != ["bash"] or not words[1].startswith("scripts/") or any("$" in w for w in words):
            continue
        if words[1] == "scripts/seeds.sh":
            words = ["bash", *words[2:]]
        env = dict(os.environ, VLPET_PRINT_ARGS="1")
        done = subprocess.run(words, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"{where}: {line}: {done.stderr.strip()}"
        try:
            with contextlib.redirect_stderr(io.StringIO()) as err:
                parser.parse_args(join_negative_values(done.stdout.split("\n")[:-1]))
        except SystemExit:
            pytest.fail(f"{where}: {line}: {err.getvalue().strip()}")
        seen += 1
    assert seen >= 10


def test_module_commands_named_in_the_docs_answer_help():
    """`python -m vlpet.<module>` commands named anywhere in the docs exist; those with an argparse --help answer it
    and cite nothing the repository lacks."""
    import importlib
    import importlib.util

    prose = "".join(p.read_text(encoding="utf-8") for p in PAGES)
    modules = sorted(set(re.findall(r"python -m (vlpet(?:\.\w+)+)", prose)))
    assert modules
    for module in modules:
        spec = importlib.util.find_spec(module)
        assert spec is not None, f"python -m {module}: no such module"
        loaded = importlib.import_module(module)
        if spec.submodule_search_locations:  # a package run as `python -m`: its __main__
            loaded = importlib.import_module(f"{module}.__main__")
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
                loaded.main(["--help"])
            continue  # no argparse --help (e.g. a launcher helper taking positional arguments)
        except SystemExit as stop:
            if stop.code != 0:
                continue
        assert "usage:" in out.getvalue(), module
        assert not OUTSIDE_REFERENCES.findall(out.getvalue()), f"{module} --help cites what the repository lacks"


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_the_docs_cite_only_what_the_repository_holds(page):
    hits = [f"{_rel(page)}:{n}: {line.strip()}" for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
            if OUTSIDE_REFERENCES.search(line)]
    assert not hits, "\n".join(hits)


@pytest.mark.parametrize("page", [p for p in PAGES if any(b.marker == "test" for b in blocks(p))
                                  and p.name != "extending.md"], ids=_rel)
def test_the_pages_python_blocks_run(page, tmp_path, monkeypatch):
    """The blocks marked `<!-- test -->` (docs/extending.md's run in tests/test_extending.py)."""
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks(page):
        if block.marker == "test":
            exec(compile(block.text, f"{_rel(page)}:{block.line}", "exec"), namespace)
