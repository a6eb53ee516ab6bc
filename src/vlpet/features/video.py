"""CLIP ViT-B/32 frame features of videos by the VALUE/HERO recipe (HERO_Video_Feature_Extractor ``clip/``; spec
§4.2), decoded with PyAV instead of an ffmpeg pipe.

Per video: frames at 1/1.5 fps (``2 / max(int(duration), 1)`` fps when the video is shorter than 1.6 s), chosen as
ffmpeg's ``fps`` filter does (each input time rounded to the nearest output tick; tick k shows the last frame whose
rounded time is <= k; the last frame repeats up to the end of the stream); each frame scaled with libswscale's
bicubic so the short side is 224 (the long side truncated by ``int``), centre-cropped at
``int((W - 224) / 2), int((H - 224) / 2)``, ``/255``, ``(x - mean) / (std + 1e-8)`` with the CLIP mean/std; the
projected CLIP image embedding (``CLIPVisionModelWithProjection(...).image_embeds`` = ``ln_post(CLS) @ proj``, not
L2-normalised), stored as float16 in ``<vid_name>.npz`` (``features`` (T, 512), uncompressed ``np.savez``). fp16 on
CUDA as the original, fp32 on CPU. Not bit-exact: the original piped ffmpeg's filter graph, and OpenAI's ``clip``
package ran the model.

A folder of frame images (TVQA's request-only 3 fps ``frames_hq``) is one video when ``frames_fps`` is given: frame
``i`` (sorted by name) shows at ``i / frames_fps`` seconds.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .files import in_shard, list_inputs, one_line, write_atomic, write_skipped
from .image import CLIP_MEAN, CLIP_STD, IMAGE_SUFFIXES, INPUT_SIZE, resolve_device

CLIP_SECONDS = 1.5  # one feature every 1.5 s
STD_EPS = 1e-8
VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv")


def sampling_fps(duration: float) -> float:
    """1/1.5 fps; for 0 < duration < 1/fps + 0.1 (1.6 s), 2 / max(int(duration), 1) (HERO ``video_loader.py``)."""
    fps = 1 / CLIP_SECONDS
    if 0 < duration < 1 / fps + 0.1:
        fps = 2 / max(int(duration), 1)
    return fps


def at_rate(frames: Iterable[tuple[float, Any]], fps: float, frame_seconds: float) -> Iterator[Any]:
    """ffmpeg's ``fps`` filter (round=near) on (time in s, frame) pairs in presentation order: tick k (from the
    first frame's tick) yields the last frame whose rounded tick is <= k; the last frame repeats up to the tick of the
    stream's end (last time + ``frame_seconds``). At least one frame comes out of a non-empty stream."""
    tick, first, last, last_t = None, None, None, 0.0
    for t, frame in frames:
        slot = math.floor(t * fps + 0.5)
        if tick is None:
            tick = first = slot
        while last is not None and tick < slot:
            yield last
            tick += 1
        last, last_t = frame, t
    if last is None:
        return
    end_tick = math.floor((last_t + frame_seconds) * fps + 0.5)
    for _ in range(tick, max(end_tick, first + 1)):  # first + 1: never an empty output
        yield last


def converted(frames: Iterable[Any], convert) -> list[np.ndarray]:
    """``convert`` of each frame, computed once per distinct frame (repeated ticks share it)."""
    out, previous, image = [], None, None
    for frame in frames:
        if frame is not previous:
            previous, image = frame, convert(frame)
        out.append(image)
    return out


def output_size(height: int, width: int) -> tuple[int, int]:
    """(height, width) with the short side 224 and the long side ``int(long * 224 / short)``."""
    if height >= width:
        return int(height * INPUT_SIZE / width), INPUT_SIZE
    return INPUT_SIZE, int(width * INPUT_SIZE / height)


def centre_crop(rgb: np.ndarray) -> np.ndarray:
    """The 224x224 crop at ``int((W - 224) / 2), int((H - 224) / 2)`` of an (H, W, 3) frame."""
    y, x = int((rgb.shape[0] - INPUT_SIZE) / 2), int((rgb.shape[1] - INPUT_SIZE) / 2)
    return rgb[y:y + INPUT_SIZE, x:x + INPUT_SIZE]


def stacked(frames: list[np.ndarray], path: Path) -> np.ndarray:
    """(T, 224, 224, 3) uint8; a source without frames is an error naming it."""
    if not frames:
        raise ValueError(f"no video frames in {path}")
    return np.stack(frames)


def decode_video(path: Path) -> np.ndarray:
    """(T, 224, 224, 3) uint8 frames of a video file at the sampling rate (PyAV; libswscale bicubic)."""
    import av

    def convert(frame) -> np.ndarray:
        height, width = output_size(frame.height, frame.width)
        return centre_crop(frame.reformat(width=width, height=height, format="rgb24",
                                          interpolation="BICUBIC").to_ndarray())

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame/slice threads in the decoder: same frames, faster
        duration = (float(stream.duration * stream.time_base) if stream.duration
                    else (container.duration or 0) / av.time_base)
        frame_seconds = 1 / float(stream.average_rate) if stream.average_rate else 0.0
        timed = ((float(frame.pts * frame.time_base), frame) for frame in container.decode(stream)
                 if frame.pts is not None)
        return stacked(converted(at_rate(timed, sampling_fps(duration), frame_seconds), convert), path)


def decode_frame_folder(folder: Path, frames_fps: float) -> np.ndarray:
    """(T, 224, 224, 3) uint8 of a folder of frame images at ``frames_fps`` (frame i, by name, at i / fps s)."""
    from PIL import Image

    def convert(path: Path) -> np.ndarray:
        with Image.open(path) as image:
            image = image.convert("RGB")
            height, width = output_size(image.height, image.width)
            return centre_crop(np.asarray(image.resize((width, height), Image.Resampling.BICUBIC)))

    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    duration = len(paths) / frames_fps
    timed = ((i / frames_fps, p) for i, p in enumerate(paths))
    return stacked(converted(at_rate(timed, sampling_fps(duration), 1 / frames_fps), convert), folder)


def list_frame_folders(root: str | Path) -> dict[str, Path]:
    """Folders below ``root`` that directly hold frame images, by folder name (= vid_name); names must be unique."""
    images = list_inputs(root, IMAGE_SUFFIXES, "frame image")
    folders: dict[str, Path] = {}
    for path in sorted({p.parent for p in images.values()}):
        if folders.setdefault(path.name, path) != path:
            raise ValueError(f"two frame folders named {path.name}: {folders[path.name]} and {path}")
    return folders


class FrameEncoder:
    """A transformers CLIP vision tower with projection; ``encode`` maps uint8 frames to float16 embeddings."""

    def __init__(self, model, device: str | torch.device = "cpu"):
        self.device = resolve_device(str(device))
        model = model.eval().to(self.device)
        self.model = model.half() if self.device.type == "cuda" else model.float()
        self.mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(CLIP_STD).view(1, 3, 1, 1) + STD_EPS

    @classmethod
    def load(cls, name: str, device: str = "auto") -> "FrameEncoder":
        """``CLIPVisionModelWithProjection.from_pretrained(name)`` (a hub id or a local folder)."""
        from transformers import CLIPVisionModelWithProjection

        try:
            model = CLIPVisionModelWithProjection.from_pretrained(name)
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot load the CLIP vision model {name!r}: {one_line(err)}") from None
        return cls(model, device)

    @torch.no_grad()
    def encode(self, frames: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(T, 224, 224, 3) uint8 -> (T, D) float16: ``(x / 255 - mean) / (std + 1e-8)``, then ``image_embeds``."""
        out = []
        for start in range(0, len(frames), batch_size):
            x = torch.from_numpy(frames[start:start + batch_size]).permute(0, 3, 1, 2).float() / 255
            x = ((x - self.mean) / self.std).to(self.device, self.model.dtype)
            out.append(self.model(pixel_values=x).image_embeds.float().cpu())
        return torch.cat(out).numpy().astype(np.float16)


class VideoSources(Dataset):
    """Decodes videos (files, or frame folders at ``frames_fps``) in DataLoader workers; a failure gives its error."""

    def __init__(self, paths: list[Path], frames_fps: float | None):
        self.paths, self.frames_fps = paths, frames_fps

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | None, str | None]:
        path = self.paths[index]
        try:
            frames = decode_video(path) if self.frames_fps is None else decode_frame_folder(path, self.frames_fps)
            return index, frames, None
        except Exception as err:  # any decoding failure is reported, never fatal
            return index, None, one_line(err)


def write_npz(path: Path, features: np.ndarray) -> None:
    """``np.savez(path, features=...)`` (uncompressed), written atomically."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, features=features)

    write_atomic(path, write)


def extract_videos(videos: str | Path, out: str | Path, encoder: FrameEncoder, batch_size: int = 64,
                   workers: int = 2, shard: tuple[int, int] | None = None, progress: bool = True,
                   frames_fps: float | None = None) -> dict:
    """Write ``<out>/<vid_name>.npz`` for every video below ``videos`` (in the shard), skipping existing outputs;
    returns the summary (counts, seconds, videos/s, frames, the skipped report)."""
    from tqdm.auto import tqdm

    out = Path(out)
    sources = list_inputs(videos, VIDEO_SUFFIXES, "video") if frames_fps is None else list_frame_folders(videos)
    sources = {k: p for k, p in sources.items() if in_shard(k, shard)}
    todo = [(k, p) for k, p in sources.items() if not (out / f"{k}.npz").is_file()]
    out.mkdir(parents=True, exist_ok=True)
    loader = DataLoader(VideoSources([p for _, p in todo], frames_fps), batch_size=None, num_workers=workers)
    skipped, n_frames, start = [], 0, time.perf_counter()
    with tqdm(total=len(todo), unit="video", desc="CLIP ViT frames", disable=not progress, dynamic_ncols=True) as bar:
        for index, frames, err in loader:
            if frames is None:
                skipped.append((todo[index][1], err))
            else:
                write_npz(out / f"{todo[index][0]}.npz", encoder.encode(np.asarray(frames), batch_size))
                n_frames += len(frames)
            bar.update(1)
    seconds = time.perf_counter() - start
    report = write_skipped(out, shard, skipped)
    written = len(todo) - len(skipped)
    return {"videos": len(sources), "written": written, "already_done": len(sources) - len(todo),
            "unreadable": len(skipped), "skipped_report": None if report is None else str(report), "frames": n_frames,
            "seconds": round(seconds, 2), "videos_per_s": round(written / seconds, 3) if seconds > 0 else None}
