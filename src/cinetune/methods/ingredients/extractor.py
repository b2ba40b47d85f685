"""Ingredients' facial extractor (paper Sec. 3.2): per identity a *local* embedding (an identity embedding plus a face
encoder's multi-scale features) and, for all identities together, a *global* one: the aligned faces pasted on one
white canvas and VAE-encoded (before the VAE, the paper's choice; or each face encoded alone and pasted after, its
ablation)."""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F


class FaceEncoder(Protocol):
    """Aligned faces (N, 3, crop, crop) in [-1, 1] -> (identity embedding (N, id_dim), [(N, S_s, C_s)] per scale)."""

    crop: int
    id_dim: int
    scale_dims: list[int]

    def __call__(self, faces: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]: ...


class ToyFaceEncoder:
    """The shipped toy identity encoder, frozen: its unit embedding is the identity embedding and its three conv
    stages (24, 12 and 6 px) the scales, each pooled to a 6 x 6 grid of tokens."""

    grid = 6

    def __init__(self, encoder=None):
        if encoder is None:
            from ...toynets import load_toy_net

            encoder = load_toy_net("identity_encoder")
        self.encoder = encoder.eval().requires_grad_(False)
        self.crop, self.id_dim = int(encoder.config.crop), int(encoder.config.dim)
        self.stages = [encoder.net[0:3], encoder.net[3:6], encoder.net[6:9]]
        self.scale_dims = [s[0].out_channels for s in self.stages]

    def spec(self) -> dict:
        return {"kind": "toy"}

    def to(self, device) -> "ToyFaceEncoder":
        self.encoder.to(device)
        return self

    @torch.no_grad()
    def __call__(self, faces: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x, scales = faces, []
        for stage in self.stages:
            x = stage(x)
            scales.append(F.adaptive_avg_pool2d(x, self.grid).flatten(2).transpose(1, 2))
        return F.normalize(self.encoder.net[9:](x), dim=-1), scales


def face_slots(count: int, height: int, width: int) -> list[tuple[int, int, int]]:
    """Where `count` faces go on the canvas: (x0, y0, size) squares side by side, as large as fit, centred."""
    size = min(height, width // max(count, 1))
    x0, y0 = (width - size * count) // 2, (height - size) // 2
    return [(x0 + i * size, y0, size) for i in range(count)]


def face_canvas(faces: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Aligned faces (K, 3, h, w) in [-1, 1] -> one white canvas (3, height, width) with the faces side by side
    (white padding keeps each face's aspect and detail instead of stretching it)."""
    canvas = faces.new_ones(3, height, width)
    for face, (x0, y0, s) in zip(faces, face_slots(len(faces), height, width)):
        canvas[:, y0:y0 + s, x0:x0 + s] = F.interpolate(face[None], size=(s, s), mode="bilinear",
                                                        align_corners=False, antialias=True)[0]
    return canvas


@torch.no_grad()
def global_latents(codec, faces: torch.Tensor, height: int, width: int, order: str = "before") -> torch.Tensor:
    """The global facial embedding: (K, 3, h, w) faces -> (C, 1, height / s, width / s) VAE latents of one canvas.
    "before": the canvas is encoded (the paper's choice); "after": a white canvas and each face are encoded alone,
    the faces' latents pasted at their slots (the paper's ablation)."""
    if order == "before":
        return codec.encode(face_canvas(faces, height, width)[None, :, None])[0]
    s = codec.spatial
    lat = codec.encode(faces.new_ones(1, 3, 1, height, width))[0]
    for face, (x0, y0, size) in zip(faces, face_slots(len(faces), height, width)):
        cell = max(size // s, 1) * s
        one = F.interpolate(face[None], size=(cell, cell), mode="bilinear", align_corners=False, antialias=True)
        lat[:, :, y0 // s:y0 // s + cell // s, x0 // s:x0 // s + cell // s] = codec.encode(one[:, :, None])[0]
    return lat
