"""Toy identity encoder: embeds toy cartoon faces so identity similarity can be measured (stand-in for ArcFace/dlib).

Metric learning with a normalised-softmax (cosine classifier with margin) over the roster's identities: embeddings of
one person cluster on the unit sphere, and cosine similarity between embeddings is the identity similarity."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class ToyIdentityEncoder(ModelMixin, ConfigMixin):
    """faces (N,3,crop,crop) in [-1,1] -> unit embeddings (N,dim)."""

    @register_to_config
    def __init__(self, crop: int = 24, dim: int = 64, num_identities: int = 20, scale: float = 16.0,
                 margin: float = 0.2):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 3, 1, 1), nn.GroupNorm(8, 32), nn.SiLU(),
            nn.Conv2d(32, 64, 3, 2, 1), nn.GroupNorm(8, 64), nn.SiLU(),
            nn.Conv2d(64, 96, 3, 2, 1), nn.GroupNorm(8, 96), nn.SiLU(),
            nn.Flatten(), nn.Linear(96 * (crop // 4) ** 2, dim),
        )
        self.classifier = nn.Parameter(torch.randn(num_identities, dim) * 0.1)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(faces), dim=-1)

    def loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Additive-margin softmax (CosFace): cos(θ_y) - m for the true identity, scaled by s."""
        cos = embeddings @ F.normalize(self.classifier, dim=-1).T
        cos = cos - self.config.margin * F.one_hot(labels, cos.shape[1])
        return F.cross_entropy(self.config.scale * cos, labels)


def crop_faces(videos: torch.Tensor, boxes: torch.Tensor, crop: int = 16, context: float = 1.3) -> torch.Tensor:
    """Square crops around face boxes, resized to crop x crop.

    videos (N,3,H,W) in [-1,1]; boxes (N,4) x0,y0,x1,y1 in pixels (one per image) -> (N,3,crop,crop). A bilinear
    sampling grid, so crops are batched and differentiable."""
    N, _, H, W = videos.shape
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    half = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]).clamp(min=2) * context / 2
    t = (torch.arange(crop, dtype=videos.dtype, device=videos.device) + 0.5) / crop * 2 - 1  # (crop,)
    xs = (cx[:, None] + half[:, None] * t[None]) / W * 2 - 1  # normalised, align_corners=False
    ys = (cy[:, None] + half[:, None] * t[None]) / H * 2 - 1
    grid = torch.stack([xs[:, None, :].expand(N, crop, crop), ys[:, :, None].expand(N, crop, crop)], -1)
    return F.grid_sample(videos, grid, mode="bilinear", padding_mode="border", align_corners=False)


def reference_portrait(identity: int, size: int = 64):
    """The toy stand-in for a user's reference photo: identity `identity` alone in a portrait, front and centre,
    mouth closed, on a plain background -> the one-frame toyworld Clip (its video[0] is the photo)."""
    from ..toyworld import RenderConfig, render
    from ..toyworld.scene import ActorSpec, Background, SceneSpec

    spec = SceneSpec(seed=0, background=Background("flat", "grey", "grey", 0.0),
                     kind="portrait", actors=[ActorSpec(identity=identity, action="talk", x=0.5, y=0.4, depth=0.5,
                                                        facing=1, scale=0.19, framing="portrait")])
    return render(spec, RenderConfig(frames=1, height=size, width=size))


def reference_face(identity: int, crop: int = 24, size: int = 64) -> torch.Tensor:
    """The face of reference_portrait(identity) -> (3,crop,crop) in [-1,1]."""
    clip = reference_portrait(identity, size)
    video = torch.from_numpy(clip.video).movedim(-1, -3).float().div(127.5).sub(1.0)
    return crop_faces(video, torch.from_numpy(clip.face_boxes[:, 0]), crop)[0]
