"""Atomic file writing and video export (mp4 / gif / png grid)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import CinetuneError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes it private; the result is an ordinary file
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def check_writable(path: str | Path) -> None:
    """Fail now, not after the work is done, when `path` cannot be written: its folder must be creatable and take
    a file (what atomic_path will write)."""
    path = Path(path)
    blocker = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise CinetuneError(f"cannot write {path}: {blocker} is not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", dir=path.parent)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise CinetuneError(f"cannot write {path}: {e.strerror or e}") from None


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces `path` once the block succeeds. An existing file at `path` is
    refused, not replaced by a folder (it is the user's data, not an earlier result)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CinetuneError(f"cannot write the folder {path}: a file of that name exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; the result is an ordinary directory
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_text_file(path: str | Path, what: str = "file") -> str:
    """A user's text file (prompts, a config) as a string; missing, unreadable or not UTF-8 is a one-line error."""
    p = Path(path)
    if not p.is_file():
        raise CinetuneError(f"{what} not found: {p}")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CinetuneError(f"{what} {p} is not UTF-8 text") from None
    except OSError as e:
        raise CinetuneError(f"cannot read {what} {p}: {e.strerror or e}") from None


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj) -> None:
    """Strict JSON: a NaN or infinite number (an undefined metric) is written as null, not as a NaN literal."""
    write_text(path, json.dumps(_finite(obj), indent=2, allow_nan=False) + "\n")


def _finite(obj):
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


VIDEO_SUFFIXES = (".mp4", ".gif", ".png")


def check_video_out(path: str | Path) -> None:
    """Fail now, before the work, when `path` is not a video type write_video writes or cannot be written."""
    if Path(path).suffix.lower() not in VIDEO_SUFFIXES:
        raise CinetuneError(f"unsupported video format {Path(path).suffix!r} for {path} (use .mp4, .gif or .png)")
    check_writable(path)


MP4_QP = 18  # x264's quantiser: visually lossless at these sizes


def _write_mp4(path: Path, video: np.ndarray, fps: int) -> None:
    """H.264 at a constant quantiser, so the same pixels give the same file: x264's default rate control (CRF with
    macroblock-tree lookahead) gave different bytes for identical frames from one call to the next in a process that
    had run a model (its float propagation depends on memory layout). yuv444p keeps colours exact enough for
    condition videos (no chroma subsampling of thin edges)."""
    import av

    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options={"qp": str(MP4_QP)})
        stream.width, stream.height, stream.pix_fmt = video.shape[2], video.shape[1], "yuv444p"
        for frame in video:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        out.mux(stream.encode())


def write_video(path: str | Path, video: np.ndarray, fps: int = 8) -> Path:
    """Write (F,H,W,3) uint8 to .mp4 / .gif / .png (a horizontal strip of frames), atomically."""
    import imageio.v3 as iio

    path = Path(path)
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise CinetuneError(f"video must be (F,H,W,3) uint8, got {video.shape} {video.dtype}")
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix == ".mp4":
            _write_mp4(tmp, video, fps)
        elif suffix == ".gif":
            iio.imwrite(tmp, video, extension=".gif", duration=1000 / fps, loop=0)
        elif suffix == ".png":
            iio.imwrite(tmp, np.concatenate(list(video), axis=1), extension=".png")
        else:
            raise CinetuneError(f"unsupported video format {suffix!r} (use .mp4, .gif or .png)")
    return path


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """Read a video file -> ((F,H,W,3) uint8, fps). Missing or corrupt files are a CinetuneError."""
    import imageio.v3 as iio

    path = Path(path)
    if not path.is_file():
        raise CinetuneError(f"video not found: {path}")
    try:
        plugin = "pyav" if path.suffix.lower() in (".mp4", ".mkv", ".mov", ".webm", ".avi") else None
        frames = iio.imread(path, plugin=plugin)
        try:
            meta = iio.immeta(path, plugin=plugin)
        except Exception:  # metadata is optional: fall back to the toy world's 8 fps
            meta = {}
    except Exception as e:
        raise CinetuneError(f"cannot read video {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise CinetuneError(f"video {path} has no frames")
    if frames.shape[-1] == 4:
        frames = frames[..., :3]
    fps = float(meta.get("fps") or 8.0)
    return frames.astype(np.uint8), fps


def video_grid(videos: list[np.ndarray], cols: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile same-length (F,H,W,3) videos into one (F,H',W',3) video."""
    n = len(videos)
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    F, H, W, _ = videos[0].shape
    grid = np.full((F, rows * (H + pad) + pad, cols * (W + pad) + pad, 3), 255, np.uint8)
    for i, v in enumerate(videos):
        r, c = divmod(i, cols)
        grid[:, pad + r * (H + pad): pad + r * (H + pad) + H, pad + c * (W + pad): pad + c * (W + pad) + W] = v[:F]
    return grid
