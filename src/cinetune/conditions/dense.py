"""Per-pixel conditions: depth, surface normals (from depth) and class segmentation.

Backends, chosen by `backend`:
- "auto" (default): "toy" on frames of toy-world size (sides up to 128 px); larger videos are refused with a request
  for one of the others (the toy annotator would draw blotches on them);
- "toy": the shipped toy annotator (`cinetune.toynets.ToyAnnotator`), which reads pixels, so it works on
  generated toy videos too. Exact toy annotations of rendered clips come from `conditions.exact`.
- a local transformers model directory: `AutoModelForDepthEstimation` (depth) or
  `AutoModelForSemanticSegmentation` (segmentation), with its image processor; nothing is downloaded.
- "package.module:function": a user callable mapping frames (N,H,W,3) uint8 to the structured array documented on
  each class below (the plug-in interface for any other model).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ..errors import CinetuneError
from .base import PALETTE, Extractor, Plugin, grey, is_model_dir


TOY_MAX_SIDE = 128  # the largest frames the toy world renders


def _toy_frames(frames: np.ndarray, kind: str = "", auto: bool = False) -> torch.Tensor:
    """Frames for the toy annotator. `auto` (the default backend): frames larger than the toy world's are no toy
    clip, and the toy annotator would draw blotches (depth, segmentation) or nothing (pose) on them: ask for a model."""
    H, W = frames.shape[1:3]
    if auto and max(H, W) > TOY_MAX_SIDE:
        raise CinetuneError(f"{kind}: this {W}x{H} video is no toy-world clip (sides up to {TOY_MAX_SIDE} px), which "
                            f"is all the built-in toy annotator reads; give --backend: a local transformers {kind} "
                            "model directory or module:function (or --backend toy to use the toy annotator anyway)")
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    if H % 8 or W % 8:
        raise CinetuneError(f"the toy annotator needs frame sides that are multiples of 8, got {H}x{W}")
    return x


class _Backend:
    def __init__(self, backend: str, kind: str):
        self.backend, self.kind = backend, kind
        self.fn, self.auto = None, backend == "auto"
        if backend in ("auto", "toy"):
            from ..toynets import load_toy_net

            self.net = load_toy_net("annotator")
        elif is_model_dir(backend):
            self._load_transformers(backend)
        elif ":" in backend:
            plugin = Plugin(backend, kind)
            # depth: (N,H,W) nearness; segmentation: (N,H,W) labels
            self.fn = lambda frames: plugin(frames, frames.shape[:3], np.float32 if kind == "depth" else np.int64)
        else:
            raise CinetuneError(f"{kind}: backend must be 'auto', 'toy', a local transformers model directory or "
                                f"'module:function', got {backend!r}")

    def _load_transformers(self, path: str) -> None:
        import transformers

        auto = {"depth": transformers.AutoModelForDepthEstimation,
                "segmentation": transformers.AutoModelForSemanticSegmentation}[self.kind]
        try:
            self.processor = transformers.AutoImageProcessor.from_pretrained(path)
            self.model = auto.from_pretrained(path, use_safetensors=True).eval()
        except (OSError, ValueError) as e:
            raise CinetuneError(f"cannot load a {self.kind} model from {path}: {str(e).splitlines()[0]}") from None
        self.fn = self._transformers

    @torch.no_grad()
    def _transformers(self, frames: np.ndarray) -> np.ndarray:
        H, W = frames.shape[1:3]
        inputs = self.processor(images=list(frames), return_tensors="pt")
        out = self.model(**inputs)
        if self.kind == "depth":
            d = torch.nn.functional.interpolate(out.predicted_depth[:, None].float(), size=(H, W), mode="bicubic",
                                                align_corners=False)[:, 0].numpy()
            # relative inverse depth (larger = nearer): normalise per frame to nearness in [0,1]
            lo = d.reshape(len(d), -1).min(1)[:, None, None]
            hi = d.reshape(len(d), -1).max(1)[:, None, None]
            return ((d - lo) / np.maximum(hi - lo, 1e-6)).astype(np.float32)
        logits = torch.nn.functional.interpolate(out.logits.float(), size=(H, W), mode="bilinear", align_corners=False)
        return logits.argmax(1).numpy().astype(np.int64)

    @torch.no_grad()
    def toy(self, frames: np.ndarray) -> dict:
        return self.net(_toy_frames(frames, self.kind, self.auto))


class Depth(Extractor):
    """Structured: (F,H,W) float32 nearness in [0,1] (1 = nearest; the bright-is-near convention of MiDaS and of
    depth control videos). Rendered grey."""

    kind = "depth"

    def __init__(self, backend: str = "auto"):
        self.b = _Backend(backend, "depth")

    def analyse_frames(self, frames: np.ndarray) -> np.ndarray:
        if self.b.fn is not None:
            return np.asarray(self.b.fn(frames), np.float32)
        return (1.0 - self.b.toy(frames)["depth"]).numpy().astype(np.float32)

    def render(self, structured: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return grey((np.clip(structured, 0, 1) * 255 + 0.5).astype(np.uint8))


def normals_from_nearness(near: np.ndarray, strength: float = 8.0) -> np.ndarray:
    """(F,H,W) nearness -> (F,H,W,3) unit normals (x right, y up, z towards the viewer) from image gradients.
    `strength` converts nearness units per pixel-fraction into slope; flat regions face the camera."""
    F_, H, W = near.shape
    out = np.empty((F_, H, W, 3), np.float32)
    s = strength * min(H, W) / 64.0
    for i, d in enumerate(near.astype(np.float32)):
        gx = cv2.Sobel(d, cv2.CV_32F, 1, 0, ksize=3) / 8.0
        gy = cv2.Sobel(d, cv2.CV_32F, 0, 1, ksize=3) / 8.0
        n = np.stack([-gx * s, gy * s, np.ones_like(d)], -1)  # nearer = towards viewer
        out[i] = n / np.linalg.norm(n, axis=-1, keepdims=True)
    return out


class Normal(Extractor):
    """Surface normals from the depth extractor's output (ControlNet's normal-from-MiDaS recipe). Structured:
    (F,H,W,3) float32 unit normals; rendered as (n + 1) / 2 * 255."""

    kind = "normal"

    def __init__(self, backend: str = "auto", depth: Depth | None = None):
        self.depth = depth or Depth(backend)

    def analyse_frames(self, frames: np.ndarray) -> np.ndarray:
        return normals_from_nearness(self.depth.analyse_frames(frames))

    def render(self, structured: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return ((structured + 1) * 127.5 + 0.5).clip(0, 255).astype(np.uint8)


class Segmentation(Extractor):
    """Structured: (F,H,W) int64 class labels (toy: `toyworld.CLASSES`); rendered with the shared palette."""

    kind = "segmentation"

    def __init__(self, backend: str = "auto"):
        self.b = _Backend(backend, "segmentation")

    def analyse_frames(self, frames: np.ndarray) -> np.ndarray:
        if self.b.fn is not None:
            return np.asarray(self.b.fn(frames), np.int64)
        return self.b.toy(frames)["classes"].argmax(1).numpy().astype(np.int64)

    def render(self, structured: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return PALETTE[np.asarray(structured) % len(PALETTE)]
