"""The command-line entry points of ``python -m vlpet``: one thin module per subcommand.

Each module parses and validates its arguments (fast, before torch where it can) and calls the library room it
fronts; no logic a library user would need lives here. A module has ``add_arguments(parser)`` and
``run(args) -> int``, or, for the commands with a parser of their own (``train``, ``prepare``), ``main(argv)``.
"""

# subcommand → (help line, True when the module parses its own argv with ``main``); only the chosen one is imported
COMMANDS = {
    "train": ("the multi-task trainer with the published flags (python -m vlpet train --help)", True),
    "demo": ("offline demo on synthetic data", False),
    "params": ("trainable / total parameters of a method", False),
    "evaluate": ("score a predictions file with the official metrics", False),
    "prepare": ("rebuild the datasets tree from the original files", True),
    "extract": ("CLIP features of images (RN101 grid) or videos (ViT-B/32)", False),
    "predict": ("predict new inputs with a trained checkpoint", False),
    "report": ("tables over seeds from run folders, plots, the paper's rows", False),
    "export": ("a checkpoint as a Hub folder: model card, PET-only weights, peft adapter", False),
    "push": ("export a checkpoint and upload it to a Hugging Face Hub repo", False),
}


def module_name(command: str) -> str:
    return f"{__name__}.{command}"


def plain(doc: str) -> str:
    """A module docstring as ``--help`` text: no reStructuredText markup (````code````, ``::``) and no references
    to specification sections that are not in the repository."""
    import re

    spec = r"(?:pipeline |data-prep |model )?spec §[\d.]+"
    text = re.sub(r",? ?" + spec, "", re.sub(r" ?\(" + spec + r"\)", "", doc))
    return text.replace("``", "").replace("::", ":")
