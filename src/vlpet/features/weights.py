"""Weights of the CLIP RN101 image trunk: a local OpenAI-format state dict, or the hub copy of OpenAI's weights.

Accepted files: a torch ``.pt``/``.pth``/``.bin`` (a plain state dict, a dict holding one under ``state_dict``, or
OpenAI's TorchScript ``RN101.pt``) or a ``.safetensors`` file. Key sets: OpenAI/open_clip names (``visual.conv1
.weight`` ..., a whole CLIP checkpoint with the text tower is fine: only ``visual.*`` is read), the same without the
``visual.`` prefix, or timm's ByobNet names (``stem.conv1.conv.weight`` ...). ``visual.attnpool.*`` is not used.
Every missing, unexpected or mis-shaped trunk key is named in one error.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from .resnet import RN101_LAYERS, RN101_WIDTH, ModifiedResNet, timm_to_openai

HUB_REPO = "timm/resnet101_clip.openai"
# open_clip's full CLIP state dict (OpenAI key names), then the timm tower (ByobNet names); the first that exists wins
HUB_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin", "model.safetensors")
IGNORED_PREFIXES = ("attnpool.",)


class WeightsError(ValueError):
    """A weights file that cannot be used: one line naming the file and the problem."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file (torch or safetensors), or a WeightsError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        if is_torchscript(path):  # OpenAI's RN101.pt: a TorchScript archive
            loaded = torch.jit.load(str(path), map_location="cpu").state_dict()
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any reader failure is a bad file for the user
        raise WeightsError(f"cannot read weights file {path}: {type(err).__name__}: {err}".splitlines()[0]) from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise WeightsError(f"weights file {path} does not hold a state dict of tensors")
    return dict(loaded)


def is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript zip archive (it holds ``constants.pkl`` next to its code)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or name == "constants.pkl" for name in archive.namelist())


def trunk_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The image-trunk entries under OpenAI's names without ``visual.``: picks the ``visual.`` part of a full CLIP
    checkpoint, drops a DDP ``module.`` prefix, maps timm names, and drops the attention pool."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if any(k.startswith("visual.") for k in state):
        state = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
    else:
        state = {timm_to_openai(k): v for k, v in state.items()}
    return {k: v for k, v in state.items() if not k.startswith(IGNORED_PREFIXES)}


def check_keys(model: ModifiedResNet, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise one WeightsError naming every missing, unexpected and mis-shaped key (``num_batches_tracked`` is
    optional)."""
    wanted = {k: v.shape for k, v in model.state_dict().items()}
    optional = {k for k in wanted if k.endswith("num_batches_tracked")}
    missing = sorted(set(wanted) - set(state) - optional)
    unexpected = sorted(set(state) - set(wanted))
    shapes = sorted(f"{k} {tuple(v.shape)} != {tuple(wanted[k])}" for k, v in state.items()
                    if k in wanted and k not in optional and v.shape != wanted[k])
    problems = [f"{name} ({len(keys)}): {', '.join(keys)}" for name, keys in
                (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", shapes)) if keys]
    if problems:
        raise WeightsError(f"{source} is not a CLIP RN101 image trunk: " + "; ".join(problems))


def load_trunk(path: str | Path, layers: tuple[int, ...] = RN101_LAYERS, width: int = RN101_WIDTH) -> ModifiedResNet:
    """A trunk holding (fp32 copies of) the values of a weights file; the file is read and every key checked
    before the model is built."""
    state = trunk_keys(read_state_dict(path))
    model = ModifiedResNet(layers, width)
    check_keys(model, state, str(path))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=False)
    return model


def hub_weights(endpoint: str | None = None, cache_dir: str | Path | None = None) -> Path:
    """OpenAI's RN101 weights from ``timm/resnet101_clip.openai`` (downloaded, or found in the hub cache): the first
    of HUB_FILES the repository holds. ``endpoint``/``cache_dir`` default to huggingface_hub's (``HF_ENDPOINT``,
    ``HF_HOME``)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    tried = []
    for name in HUB_FILES:
        try:
            return Path(hf_hub_download(HUB_REPO, name, endpoint=endpoint, cache_dir=cache_dir))
        except EntryNotFoundError as err:  # not in the repository, or offline and not cached: try the next one
            tried.append(f"{name}: {type(err).__name__}")
        except Exception as err:  # network, auth, missing repository: one line, with what to do instead
            tried.append(f"{name}: {type(err).__name__}")
            break
    raise WeightsError(f"cannot fetch OpenAI's RN101 weights from the Hugging Face hub repository {HUB_REPO} "
                       f"({'; '.join(tried)}); download one of {', '.join(HUB_FILES)} elsewhere and pass --weights FILE")
