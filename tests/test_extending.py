"""docs/extending.md is a tutorial that cannot rot: its code blocks are the repository's code, and its Python
blocks build SSF, train it with the trainer on tiny synthetic data and load its checkpoint back."""

from __future__ import annotations

import os
import subprocess

from doc_blocks import ROOT, blocks, check_against_repository

PAGE = ROOT / "docs" / "extending.md"


def test_the_tutorials_code_is_the_repositorys_code():
    marked = [b for b in blocks(PAGE) if b.marker in ("file", "excerpt")]
    assert {b.target for b in marked} >= {"src/vlpet/pet/ssf.py", "src/vlpet/pet/__init__.py", "src/vlpet/flags/published.py",
                                          "scripts/image-text/ssf.sh"}
    problems = [f"docs/extending.md:{b.line}: {p}" for b in marked if (p := check_against_repository(b))]
    assert not problems, "\n".join(problems)


def test_the_tutorial_builds_trains_and_checkpoints_ssf(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    code = [b for b in blocks(PAGE) if b.marker == "test"]
    assert len(code) >= 2
    for block in code:
        exec(compile(block.text, f"docs/extending.md:{block.line}", "exec"), namespace)
    assert (tmp_path / "run" / "LAST" / "pet_weights.safetensors").is_file()


def test_the_launcher_selects_ssf():
    from vlpet.flags.parse import make_parser
    from vlpet.flags.published import pet_config_from_args

    env = dict(os.environ, VLPET_PRINT_ARGS="1")
    done = subprocess.run(["bash", str(ROOT / "scripts" / "image-text" / "ssf.sh"), "20000", "42"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    args = make_parser().parse_args(done.stdout.split())
    assert pet_config_from_args(args).method == "ssf" and args.seed == 42
