"""Video frame features (VALUE/HERO recipe): frame sampling, geometry, and the CLI on tiny videos written with PyAV
and a tiny random CLIPVisionModelWithProjection."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from PIL import Image

from test_features_image import one_thread  # noqa: F401 (autouse fixture)
from vlpet.__main__ import main
from vlpet.features.image import CLIP_MEAN, CLIP_STD
from vlpet.features.video import at_rate, centre_crop, decode_video, output_size, sampling_fps


def write_video(path, seconds: float, fps: int = 10, size=(96, 64)) -> None:
    """An mpeg4 video whose frame i is a flat grey of level 20 * (i // 10) (one level per second)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(int(seconds * fps)):
            rgb = np.full((size[1], size[0], 3), 20 * (i // fps), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_sampling_follows_the_ffmpeg_fps_filter():
    frames = [(i / 10, i) for i in range(70)]  # 7 s at 10 fps
    # tick k (k * 1.5 s) shows the last frame whose time rounds to a tick <= k: 0.7, 2.2, 3.7, 5.2, 6.7 s; the
    # frames from 6.75 s round to tick 5 = round(7.0 s end / 1.5), where the output ends
    assert list(at_rate(frames, 1 / 1.5, 0.1)) == [7, 22, 37, 52, 67]
    assert sampling_fps(60.0) == pytest.approx(1 / 1.5)
    assert sampling_fps(1.2) == 2.0 and sampling_fps(0.5) == 2.0 and sampling_fps(1.7) == pytest.approx(1 / 1.5)
    assert list(at_rate([(0.0, "only")], 1 / 1.5, 0.04)) == ["only"]  # never empty


def test_geometry_short_side_224_then_centre_crop():
    assert output_size(360, 640) == (224, 398) and output_size(640, 360) == (398, 224)
    frame = np.arange(224 * 398 * 3, dtype=np.int64).reshape(224, 398, 3)
    np.testing.assert_array_equal(centre_crop(frame), frame[:, 87:311])


def test_decode_video_picks_one_frame_every_1_5_s(tmp_path):
    write_video(tmp_path / "v.mp4", 7.0)
    frames = decode_video(tmp_path / "v.mp4")
    assert frames.shape == (5, 224, 224, 3) and frames.dtype == np.uint8
    # frames 7, 22, 37, 52, 67 -> seconds 0, 2, 3, 5, 6 -> grey levels 0, 40, 60, 100, 120 (mpeg4 is lossy)
    np.testing.assert_allclose(frames[:, 112, 112, 0], [0, 40, 60, 100, 120], atol=6)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=224, patch_size=32, projection_dim=8, hidden_act="quick_gelu")
    folder = tmp_path_factory.mktemp("tiny_clip")
    CLIPVisionModelWithProjection(config).eval().save_pretrained(folder)
    return folder


def embeds(model_dir, frames: np.ndarray) -> np.ndarray:
    """The recipe written out: x / 255, (x - mean) / (std + 1e-8), image_embeds, float16."""
    from transformers import CLIPVisionModelWithProjection

    model = CLIPVisionModelWithProjection.from_pretrained(model_dir).eval()
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / (torch.tensor(CLIP_STD).view(1, 3, 1, 1) + 1e-8)
    with torch.no_grad():
        return model(pixel_values=x).image_embeds.numpy().astype(np.float16)


def run_cli(tmp_path, model_dir, *extra):
    return main(["extract", "--video", "--videos", str(tmp_path / "videos"), "--out", str(tmp_path / "out"),
                 "--model", str(model_dir), "--device", "cpu", "--workers", "0", "--no-progress", *extra])


def test_cli_writes_npz_features_skips_corrupt_and_resumes(tmp_path, tiny_clip, capsys):
    (tmp_path / "videos" / "show").mkdir(parents=True)
    write_video(tmp_path / "videos" / "show" / "friends_s01e01_seg02_clip_00.mp4", 4.0)
    write_video(tmp_path / "videos" / "short.mp4", 1.0)
    (tmp_path / "videos" / "broken.mp4").write_bytes(b"not a video at all")
    assert run_cli(tmp_path, tiny_clip) == 0
    for name, n_frames in (("friends_s01e01_seg02_clip_00", 3), ("short", 2)):
        with np.load(tmp_path / "out" / f"{name}.npz") as npz:
            assert list(npz) == ["features"]
            features = npz["features"]
        assert features.shape == (n_frames, 8) and features.dtype == np.float16
        source = next((tmp_path / "videos").rglob(f"{name}.mp4"))
        np.testing.assert_allclose(features.astype(np.float32), embeds(tiny_clip, decode_video(source)), atol=2e-3)
    report = (tmp_path / "out" / "skipped.txt").read_text()
    assert "broken.mp4" in report and "friends" not in report
    assert '"unreadable": 1' in capsys.readouterr().out
    before = (tmp_path / "out" / "short.npz").stat().st_mtime_ns
    assert run_cli(tmp_path, tiny_clip) == 0
    assert '"written": 0' in capsys.readouterr().out
    assert (tmp_path / "out" / "short.npz").stat().st_mtime_ns == before


def test_cli_frame_folders_at_their_rate(tmp_path, tiny_clip, capsys):
    folder = tmp_path / "videos" / "frames_hq" / "castle_s01e01_seg01_clip_00"
    folder.mkdir(parents=True)
    for i in range(12):  # 4 s at 3 fps
        Image.fromarray(np.full((60, 80, 3), 10 * i, np.uint8)).save(folder / f"{i + 1:05d}.jpg")
    assert run_cli(tmp_path, tiny_clip, "--frames-fps", "3") == 0
    with np.load(tmp_path / "out" / "castle_s01e01_seg01_clip_00.npz") as npz:
        assert npz["features"].shape == (3, 8)  # ticks 0, 1.5, 3 s of 4 s


def test_cli_video_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "videos").mkdir()
    write_video(tmp_path / "videos" / "a.mp4", 1.0)
    assert run_cli(tmp_path, tmp_path / "no_such_model") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot load the CLIP vision model" in err
    assert main(["extract", "--videos", str(tmp_path / "videos"), "--out", str(tmp_path / "o")]) == 2
    assert "--video goes with --videos" in capsys.readouterr().err
