"""The CLIP RN101 grid extractor: the trunk against an independent functional reference, the (49, C) row order,
float16 storage as the only loss, the weights loader, and the extract loop (corrupt images, resume, shards, CLI)."""

from __future__ import annotations

import re

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vlpet.__main__ import main
from vlpet.features.files import in_shard, parse_shard
from vlpet.features.image import CLIP_MEAN, CLIP_STD, GridExtractor, extract_images, preprocess
from vlpet.features.resnet import ModifiedResNet
from vlpet.features.weights import WeightsError, check_keys, load_trunk, trunk_keys

TINY = {"layers": (2, 1, 1, 1), "width": 8}


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine OpenMP threads waiting on each other make tiny convs 50x
    slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)  # every block kind: identity, stride-1 and strided shortcuts


def randomised(model: ModifiedResNet, seed: int = 0) -> ModifiedResNet:
    """Random conv weights and BatchNorm affine + running statistics, so BN is not the identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * (0.3 if "conv" in name else 0.5))
    return model.eval()


# --- an independent, straightforward reference built from the spec's description and the OpenAI key names ---

def ref_conv(x, w, stride=1, pad=0):
    """Direct convolution: out[o, y, x] = sum_{c, i, j} w[o, c, i, j] * xpad[c, stride*y + i, stride*x + j]."""
    x = F.pad(x, (pad, pad, pad, pad))
    k, h, wd = w.shape[-1], (x.shape[-2] - w.shape[-1]) // stride + 1, (x.shape[-1] - w.shape[-1]) // stride + 1
    out = torch.zeros(x.shape[0], w.shape[0], h, wd, dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            patch = x[:, :, i:i + stride * h:stride, j:j + stride * wd:stride]
            out += torch.einsum("bchw,oc->bohw", patch, w[:, :, i, j])
    return out


def ref_bn(x, sd, p):
    scale = sd[f"{p}.weight"] / torch.sqrt(sd[f"{p}.running_var"] + 1e-5)
    return (x - sd[f"{p}.running_mean"].view(1, -1, 1, 1)) * scale.view(1, -1, 1, 1) + sd[f"{p}.bias"].view(1, -1, 1, 1)


def ref_avg(x, k):
    b, c, h, w = x.shape
    return x.reshape(b, c, h // k, k, w // k, k).mean(dim=(3, 5)) if k > 1 else x


def ref_trunk(sd, x, layers):
    for n in (1, 2, 3):
        x = torch.relu(ref_bn(ref_conv(x, sd[f"conv{n}.weight"], 2 if n == 1 else 1, 1), sd, f"bn{n}"))
    x = ref_avg(x, 2)
    for stage, blocks in enumerate(layers, start=1):
        for b in range(blocks):
            p, stride = f"layer{stage}.{b}", 2 if stage > 1 and b == 0 else 1
            out = torch.relu(ref_bn(ref_conv(x, sd[f"{p}.conv1.weight"]), sd, f"{p}.bn1"))
            out = torch.relu(ref_bn(ref_conv(out, sd[f"{p}.conv2.weight"], 1, 1), sd, f"{p}.bn2"))
            out = ref_bn(ref_conv(ref_avg(out, stride), sd[f"{p}.conv3.weight"]), sd, f"{p}.bn3")
            if f"{p}.downsample.0.weight" in sd:
                x = ref_bn(ref_conv(ref_avg(x, stride), sd[f"{p}.downsample.0.weight"]), sd, f"{p}.downsample.1")
            x = torch.relu(out + x)
    return x


def test_trunk_equals_the_functional_reference():
    model = randomised(ModifiedResNet(**TINY)).double()
    x = torch.randn(2, 3, 64, 96, dtype=torch.float64)
    sd = model.state_dict()
    with torch.no_grad():
        got = model(x)
    assert got.shape == (2, 8 * 32, 2, 3)
    torch.testing.assert_close(got, ref_trunk(sd, x, TINY["layers"]), rtol=1e-10, atol=1e-10)


def test_rn101_structure_and_openai_key_names():
    model = ModifiedResNet()
    keys = set(model.state_dict())
    assert {"conv3.weight", "bn3.running_var", "layer1.0.downsample.0.weight", "layer3.22.bn3.bias",
            "layer4.0.downsample.1.running_mean", "layer4.2.conv3.weight"} <= keys
    assert not any(k.startswith(("layer1.1.downsample", "layer3.1.downsample", "attnpool")) for k in keys)
    assert [len(getattr(model, f"layer{k}")) for k in (1, 2, 3, 4)] == [3, 4, 23, 3]
    assert model.out_channels == 2048


def test_preprocess_is_a_bicubic_squash_with_clip_normalisation():
    rgb = np.random.default_rng(0).integers(0, 256, (50, 81, 3), dtype=np.uint8)
    got = preprocess(Image.fromarray(rgb))
    resized = np.asarray(Image.fromarray(rgb).resize((224, 224), Image.BICUBIC), dtype=np.float64) / 255
    want = (resized - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    assert got.shape == (3, 224, 224) and got.dtype == torch.float32
    np.testing.assert_allclose(got.permute(1, 2, 0).numpy(), want, atol=1e-6)


def write_images(folder, n, size=(40, 30)):
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        sub = folder / ("a" if k % 2 else "b/c")  # nested folders: the walk is recursive
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"img_{k}.{'png' if k % 2 else 'jpg'}"
        Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture()
def tiny_extractor():
    return GridExtractor(randomised(ModifiedResNet(**TINY)), "cpu")


def read_h5(path, img_id):
    with h5py.File(path, "r") as f:
        assert list(f) == [img_id] and list(f[img_id]) == ["features"]
        return f[img_id]["features"][()]


def test_rows_are_7h_plus_w_and_float16_storage_is_the_only_loss(tmp_path, tiny_extractor):
    paths = write_images(tmp_path / "img", 3)
    # batch 1 here: batching changes fp32 sums in their last bits (then checked below to stay within fp16 rounding)
    summary = extract_images(tmp_path / "img", tmp_path / "out", tiny_extractor, batch_size=1, workers=0,
                             progress=False)
    assert summary["written"] == 3 and summary["unreadable"] == 0
    extract_images(tmp_path / "img", tmp_path / "batched", tiny_extractor, batch_size=3, workers=1, progress=False)
    for path in paths:
        img_id = path.stem
        stored = read_h5(tmp_path / "out" / f"{img_id}.h5", img_id)
        assert stored.shape == (49, 256) and stored.dtype == np.float16
        with torch.no_grad():
            grid = tiny_extractor.trunk(preprocess(Image.open(path)).unsqueeze(0))[0]  # fp32 (C, 7, 7)
        for h, w in ((0, 0), (0, 6), (3, 2), (6, 0), (6, 6)):
            np.testing.assert_array_equal(stored[7 * h + w], grid[:, h, w].half().numpy())
        exact = grid.permute(1, 2, 0).reshape(49, -1).numpy()
        assert np.abs(stored.astype(np.float32) - exact).max() <= np.abs(exact).max() * 2 ** -11 + 1e-7
        batched = read_h5(tmp_path / "batched" / f"{img_id}.h5", img_id).astype(np.float32)
        assert np.abs(batched - exact).max() <= np.abs(exact).max() * 2 ** -10
        api = tiny_extractor([Image.open(path)])
        assert api.dtype == torch.float32 and api.shape == (1, 49, 256)
        np.testing.assert_array_equal(api[0].numpy(), stored.astype(np.float32))


def test_corrupt_image_is_listed_never_fatal(tmp_path, tiny_extractor):
    write_images(tmp_path / "img", 2)
    (tmp_path / "img" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    summary = extract_images(tmp_path / "img", tmp_path / "out", tiny_extractor, workers=0, progress=False)
    assert summary["written"] == 2 and summary["unreadable"] == 1
    report = (tmp_path / "out" / "skipped.txt").read_text().splitlines()
    assert len(report) == 1 and report[0].startswith(str(tmp_path / "img" / "broken.jpg") + "\t")
    assert not (tmp_path / "out" / "broken.h5").exists()


def test_resume_skips_complete_outputs_and_redoes_partial_ones(tmp_path, tiny_extractor):
    write_images(tmp_path / "img", 3)
    out = tmp_path / "out"
    extract_images(tmp_path / "img", out, tiny_extractor, workers=0, progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.h5")}
    (out / "img_1.h5").write_bytes(b"truncated")  # a partial file from a non-atomic copy
    (out / ".img_2.h5.tmp-123").write_bytes(b"left by a killed run")
    summary = extract_images(tmp_path / "img", out, tiny_extractor, workers=0, progress=False)
    assert summary["written"] == 1 and summary["already_done"] == 2
    assert read_h5(out / "img_1.h5", "img_1").shape == (49, 256)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("img_[02].h5")} == {
        k: v for k, v in before.items() if k != "img_1.h5"}


def test_shards_are_disjoint_and_complete(tmp_path, tiny_extractor):
    ids = [f"COCO_val2014_{k:012d}" for k in range(1000)]
    owners = [[k for k in range(3) if in_shard(i, (k, 3))] for i in ids]
    assert all(len(o) == 1 for o in owners) and {o[0] for o in owners} == {0, 1, 2}
    write_images(tmp_path / "img", 7)
    counts = [extract_images(tmp_path / "img", tmp_path / "out", tiny_extractor, workers=0, shard=(k, 3),
                             progress=False)["written"] for k in range(3)]
    assert sum(counts) == 7 and len(list((tmp_path / "out").glob("*.h5"))) == 7
    for bad in ("3/3", "1", "a/b", "-1/2"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


def timm_names(state: dict) -> dict:
    """timm's ByobNet names of an OpenAI trunk state dict (the regexes of timm's ``_convert_openai_clip``)."""
    def stage(m):
        part = {1: "conv1_1x1.", 2: "conv2_kxk.", 3: "conv3_1x1."}[int(m[4])]
        return f"stages.{int(m[1]) - 1}.{m[2]}.{part}{m[3]}"

    out = {}
    for k, v in state.items():
        k = re.sub(r"^conv([0-9])", r"stem.conv\1.conv", k)
        k = re.sub(r"^bn([0-9])", r"stem.conv\1.bn", k)
        k = re.sub(r"^layer([0-9])\.([0-9]+)\.([a-z]+)([0-9])", stage, k)
        k = re.sub(r"^layer([0-9])\.([0-9]+)\.downsample\.([0-9])",
                   lambda m: f"stages.{int(m[1]) - 1}.{m[2]}.shortcut." + ("conv.conv" if m[3] == "0" else "conv.bn"), k)
        out[k] = v
    return out


class TorchScriptClip(torch.nn.Module):
    def __init__(self, visual):
        super().__init__()
        self.visual = visual

    def forward(self, x):
        return self.visual(x)


def test_weights_loader_accepts_openai_full_clip_and_timm_names(tmp_path):
    source = randomised(ModifiedResNet(**TINY), seed=3)
    state = source.state_dict()
    full_clip = {f"visual.{k}": v.half() for k, v in state.items()}  # OpenAI stores fp16 convs
    full_clip.update({"visual.attnpool.positional_embedding": torch.zeros(50, 256), "token_embedding.weight":
                      torch.zeros(10, 4), "transformer.resblocks.0.attn.in_proj_weight": torch.zeros(12, 4)})
    torch.save(full_clip, tmp_path / "clip.pt")
    from safetensors.torch import save_file

    save_file({**timm_names(state), "head.pos_embed": torch.zeros(50, 256)}, str(tmp_path / "timm.safetensors"))
    archive = torch.jit.trace(TorchScriptClip(source), torch.zeros(1, 3, 32, 32))  # TorchScript, like OpenAI's RN101.pt
    torch.jit.save(archive, str(tmp_path / "RN101.pt"))
    for name in ("clip.pt", "timm.safetensors", "RN101.pt"):
        loaded = load_trunk(tmp_path / name, **TINY).state_dict()
        for k, v in state.items():
            want = v.half().float() if name == "clip.pt" and v.is_floating_point() else v
            torch.testing.assert_close(loaded[k], want, rtol=0, atol=0)


def test_weights_loader_names_every_missing_and_unexpected_key():
    model = ModifiedResNet(**TINY)
    state = {f"visual.{k}": v for k, v in model.state_dict().items()}
    del state["visual.layer2.0.downsample.0.weight"], state["visual.bn1.running_var"]
    state["visual.layer1.0.conv4.weight"] = torch.zeros(1)
    state["visual.conv1.weight"] = torch.zeros(3, 3, 3, 3)
    with pytest.raises(WeightsError) as err:
        check_keys(model, trunk_keys(state), "w.pt")
    message = str(err.value)
    assert "\n" not in message
    for part in ("missing keys (2): bn1.running_var, layer2.0.downsample.0.weight", "unexpected keys (1): "
                 "layer1.0.conv4.weight", "conv1.weight (3, 3, 3, 3) != (4, 3, 3, 3)"):
        assert part in message


def test_cli_bad_weights_file_is_one_line_and_nothing_written(tmp_path, capsys):
    write_images(tmp_path / "img", 1)
    (tmp_path / "w.pt").write_bytes(b"this is not a checkpoint")
    for weights, expected in (("w.pt", "cannot read weights file"), ("absent.pt", "weights file not found")):
        code = main(["extract", "--images", str(tmp_path / "img"), "--out", str(tmp_path / "out"), "--model", "RN101",
                     "--weights", str(tmp_path / weights), "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, expected", [
    (["--model", "RN50", "--weights", "w.pt"], "RN101"),
    ([], "--weights FILE"),
    (["--weights", "w.pt", "--shard", "2/2"], "0 <= K < N"),
])
def test_cli_bad_flags_are_one_line(tmp_path, capsys, argv, expected):
    write_images(tmp_path / "img", 1)
    torch.save({}, tmp_path / "w.pt")
    argv = [a.replace("w.pt", str(tmp_path / "w.pt")) for a in argv]
    assert main(["extract", "--images", str(tmp_path / "img"), "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err


def test_cuda_precision_policy_fp16_convs_fp32_batchnorm():
    """OpenAI's ``convert_weights`` on the trunk (what runs on CUDA), exercised on the CPU: conv weights fp16, BN
    parameters and buffers fp32, an fp16 grid within fp16 noise of the fp32 one."""
    model = randomised(ModifiedResNet(**TINY))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        exact = model(x)
        model.half_convs()
        mixed = model(x.half())
    for name, tensor in model.state_dict().items():
        is_conv = name.endswith("conv1.weight") or name.endswith("conv2.weight") or name.endswith("conv3.weight") \
            or name.endswith("downsample.0.weight")
        assert tensor.dtype == (torch.float16 if is_conv else torch.int64 if "num_batches" in name else torch.float32)
    assert mixed.dtype == torch.float16
    assert (mixed.float() - exact).abs().max() <= 5e-3 * exact.abs().max()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_extractor_matches_cpu_within_fp16_noise():
    images = [Image.fromarray(np.random.default_rng(k).integers(0, 256, (60, 90, 3), dtype=np.uint8)) for k in range(3)]
    cpu = GridExtractor(randomised(ModifiedResNet(**TINY)), "cpu")(images)
    gpu = GridExtractor(randomised(ModifiedResNet(**TINY)), "cuda")(images)
    assert (gpu - cpu).abs().max() <= 5e-3 * cpu.abs().max()
