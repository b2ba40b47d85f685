"""Toy video encoder: the toy world's stand-in for I3D / CLIP features (FVD, perceptual distance, alignment).

Trained to recognise toy-world attributes (shapes, object colours, motions, actor actions, background colour); its
penultimate features are what the Fréchet distance and the perceptual distance compare. Not a real-video network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .labels import GROUPS


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(8, cout), nn.SiLU())


class ToyVideoEncoder(ModelMixin, ConfigMixin):
    """videos (B,3,F,H,W) in [-1,1] -> features (B,feature_dim); any F >= 1, any H,W (resized to `size`).

    Per-frame 2-D stem (three stride-2 stages: the frame features of the perceptual distance), then factorised
    space-time convolutions that see motion, then global average pooling."""

    @register_to_config
    def __init__(self, size: int = 64, widths: tuple[int, ...] = (32, 64, 128), feature_dim: int = 256):
        super().__init__()
        chans = (3, *widths)
        self.stages = nn.ModuleList(_conv(chans[i], chans[i + 1], 2) for i in range(len(widths)))
        w = widths[-1]
        self.temporal = nn.Sequential(
            nn.Conv3d(w, w, (3, 1, 1), padding=(1, 0, 0)), nn.GroupNorm(8, w), nn.SiLU(),
            nn.Conv3d(w, w, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)), nn.GroupNorm(8, w), nn.SiLU(),
            nn.Conv3d(w, w, (3, 1, 1), padding=(1, 0, 0)), nn.GroupNorm(8, w), nn.SiLU(),
        )
        self.proj = nn.Linear(3 * w, feature_dim)
        self.heads = nn.ModuleDict({g: nn.Linear(feature_dim, len(names)) for g, names in GROUPS.items()})

    def _resize(self, videos: torch.Tensor) -> torch.Tensor:
        B, C, Fr, H, W = videos.shape
        x = videos.permute(0, 2, 1, 3, 4).reshape(B * Fr, C, H, W)
        s = self.config.size
        if (H, W) != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
        return x

    def frame_features(self, videos: torch.Tensor) -> list[torch.Tensor]:
        """Per-frame stem activations, one (B*F, C_i, H_i, W_i) tensor per stage."""
        x, feats = self._resize(videos), []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def frame_embeddings(self, videos: torch.Tensor) -> torch.Tensor:
        """(B,F,C) spatially pooled last-stage features, for temporal consistency."""
        B, Fr = videos.shape[0], videos.shape[2]
        return self.frame_features(videos)[-1].mean((2, 3)).view(B, Fr, -1)

    def forward(self, videos: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Returns (features (B,feature_dim), logits per attribute group)."""
        B, Fr = videos.shape[0], videos.shape[2]
        x = self.frame_features(videos)[-1]
        x = x.view(B, Fr, *x.shape[1:]).transpose(1, 2)  # (B,C,F,h,w)
        x = self.temporal(x)
        # mean, std and max over space-time: the mean carries the background, the std how much varies, and the max
        # detects small objects (multi-label presence), which mean pooling drowns in the background
        flat = x.flatten(2)
        pooled = torch.cat([flat.mean(2), flat.std(2), flat.amax(2)], 1)
        feats = self.proj(pooled)
        h = F.silu(feats)
        return feats, {g: head(h) for g, head in self.heads.items()}

    @torch.no_grad()
    def probabilities(self, videos: torch.Tensor) -> dict[str, torch.Tensor]:
        _, logits = self(videos)
        return {g: (logits[g].softmax(-1) if g == "background" else logits[g].sigmoid()) for g in logits}
