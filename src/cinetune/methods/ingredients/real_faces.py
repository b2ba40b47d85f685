"""Ingredients' facial extractor for real photos (paper Sec. 3.2 at real scale): dlib finds each face, aligns it on five
landmarks into the 150-px chip its ResNet was trained on, and gives the 128-d identity embedding; a local CLIP vision
directory (transformers) gives the multi-scale features, its hidden states at chosen layers. The paper pairs an
ArcFace-style identity network with CLIP features; dlib's embedding is the one that loads offline from PyPI
(`pip install 'cinetune[faces]'`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import CinetuneError

CHIP = 150  # dlib's aligned face size for its embedding network
PADDING = 0.25  # dlib's default context around the landmarks


class DlibClipFaceEncoder:
    """FaceEncoder: aligned chips (N, 3, 150, 150) in [-1, 1] -> (unit dlib embeddings (N, 128), [CLIP hidden states
    (N, 1 + P, C) at each of `layers`]). `align` turns photos into those chips. Both networks are frozen."""

    crop = CHIP
    id_dim = 128

    def __init__(self, clip: str | Path, layers: tuple[int, ...] = (-1,)):
        from transformers import CLIPVisionModel

        from ...metrics.identity import DlibFaces

        self.dlib = DlibFaces()
        self.clip_dir, self.layers = str(clip), tuple(int(v) for v in layers)
        if not (Path(clip) / "config.json").is_file():
            raise CinetuneError(f"ingredients encoder: {clip} is not a local CLIP vision directory (no config.json)")
        try:
            self.clip = CLIPVisionModel.from_pretrained(str(clip), use_safetensors=True).eval().requires_grad_(False)
        except (OSError, ValueError) as e:
            raise CinetuneError(f"cannot load a CLIP vision model from {clip}: {str(e).splitlines()[0]}") from None
        n = self.clip.config.num_hidden_layers
        if not self.layers or any(not -n - 1 <= v <= n for v in self.layers):
            raise CinetuneError(f"ingredients clip_layers must index the {n} + 1 hidden states, got {self.layers}")
        self.scale_dims = [self.clip.config.hidden_size] * len(self.layers)
        self.mean, self.std = _normalisation(Path(clip))

    def spec(self) -> dict:
        """What the model's manifest records to rebuild this encoder."""
        return {"kind": "dlib-clip", "clip": self.clip_dir, "layers": list(self.layers)}

    def to(self, device) -> "DlibClipFaceEncoder":
        self.clip.to(device)
        return self

    @torch.no_grad()
    def __call__(self, faces: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        chips = ((faces.float().clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        ident = torch.tensor(np.stack([np.asarray(self.dlib.net.compute_face_descriptor(np.ascontiguousarray(c)))
                                       for c in chips]), dtype=torch.float32, device=faces.device)
        size = self.clip.config.image_size
        x = F.interpolate(faces.float().add(1).div(2), size=(size, size), mode="bicubic", align_corners=False)
        x = (x - self.mean.to(x)) / self.std.to(x)
        hidden = self.clip(pixel_values=x.to(self.clip.dtype), output_hidden_states=True).hidden_states
        return F.normalize(ident, dim=-1), [hidden[v].float() for v in self.layers]

    def align(self, images: list[np.ndarray]) -> torch.Tensor:
        """Photos or video frames (H, W, 3) uint8, one per identity -> each one's largest face as a dlib chip
        (K, 3, 150, 150) in [-1, 1]."""
        out = []
        for i, img in enumerate(images):
            img = np.ascontiguousarray(np.asarray(img))
            if img.ndim != 3 or img.shape[-1] != 3 or img.dtype != np.uint8:
                raise CinetuneError(f"reference {i}: expected an (H, W, 3) uint8 image, got {img.shape} {img.dtype}")
            dets = list(self.dlib.detector(img, 1))
            if not dets:
                raise CinetuneError(f"reference {i}: no face found")
            det = max(dets, key=lambda d: d.width() * d.height())
            chip = self.dlib.dlib.get_face_chip(img, self.dlib.shape(img, det), size=CHIP, padding=PADDING)
            out.append(torch.from_numpy(np.asarray(chip)).permute(2, 0, 1).float().div(127.5).sub(1.0))
        return torch.stack(out)


def _normalisation(clip: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The directory's image processor mean / std (CLIP's own when it has none), as (1, 3, 1, 1)."""
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    if (clip / "preprocessor_config.json").is_file():
        from transformers import CLIPImageProcessor

        proc = CLIPImageProcessor.from_pretrained(str(clip))
        mean, std = proc.image_mean, proc.image_std
    return torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)


def make_encoder(spec: dict | str | None):
    """A manifest's or config's encoder spec -> the encoder: "toy" (the shipped toy identity encoder) or
    {"kind": "dlib-clip", "clip": DIR, "layers": [...]}."""
    from .extractor import ToyFaceEncoder

    if spec in (None, "toy") or (isinstance(spec, dict) and spec.get("kind") == "toy"):
        return ToyFaceEncoder()
    if isinstance(spec, dict) and spec.get("kind") == "dlib-clip":
        return DlibClipFaceEncoder(spec.get("clip", ""), tuple(spec.get("layers", (-1,))))
    raise CinetuneError(f"unknown Ingredients face encoder {spec!r} (toy or dlib-clip)")
