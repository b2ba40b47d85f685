"""ControlNeXt's light control encoder (Peng et al. 2024, Sec. 3.2), made to land on a video DiT's token grid.

Per-frame 2-D convolutions (the public code has no temporal layers) with timestep-conditioned ResNet blocks, then
causal temporal pooling onto the latent frames of a Wan-style VAE (latent frame 0 <- frame 0, latent frame k <-
frames 4k-3..4k), a patchify-sized final stride and a 1x1 projection to the DiT's width."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn


class _ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int):
        super().__init__()
        self.n1, self.c1 = nn.GroupNorm(min(32, cin // 4), cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.t = nn.Linear(temb, cout)
        self.n2, self.c2 = nn.GroupNorm(min(32, cout // 4), cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x))) + self.t(F.silu(temb))[:, :, None, None]
        return self.skip(x) + self.c2(F.silu(self.n2(h)))


def temporal_groups(frames: int, compression: int) -> list[tuple[int, int]]:
    """Causal frame groups of a Wan-style VAE: [0,1), then [1,1+c), [1+c,1+2c), ... -> one per latent frame."""
    if compression == 1:
        return [(i, i + 1) for i in range(frames)]
    if (frames - 1) % compression:
        raise ValueError(f"{frames} frames do not fit a {compression}x causal temporal compression (need {compression}k+1)")
    return [(0, 1)] + [(1 + k * compression, 1 + (k + 1) * compression) for k in range((frames - 1) // compression)]


class ControlEncoder(nn.Module):
    """condition (B, C_in, F, H, W) in [-1, 1], timestep (B,) -> tokens (B, F' * H/S * W/S, out_dim),
    S = spatial_stride (VAE spatial factor x patch size), F' = latent frames."""

    def __init__(self, in_channels: int = 3, out_dim: int = 256, spatial_stride: int = 8, temporal_compression: int = 4,
                 widths: tuple[int, ...] = (64, 64, 128), block_widths: tuple[int, ...] = (128, 256), temb_dim: int = 256):
        super().__init__()
        n_down = int(math.log2(spatial_stride))
        if 2 ** n_down != spatial_stride or n_down < 1:
            raise ValueError(f"spatial_stride must be a power of two >= 2, got {spatial_stride}")
        self.temporal_compression = temporal_compression
        # stem: three 3x3 convs, the first with stride 2 (as the public code)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 2, 1), nn.GroupNorm(min(32, widths[0] // 4), widths[0]), nn.ReLU(),
            nn.Conv2d(widths[0], widths[1], 3, 1, 1), nn.GroupNorm(min(32, widths[1] // 4), widths[1]), nn.ReLU(),
            nn.Conv2d(widths[1], widths[2], 3, 1, 1), nn.GroupNorm(min(32, widths[2] // 4), widths[2]), nn.ReLU())
        self.time_proj = Timesteps(temb_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(temb_dim, temb_dim)
        # ResNet blocks each followed by a stride-2 downsample, one per remaining factor of two
        self.blocks, self.downs = nn.ModuleList(), nn.ModuleList()
        cin = widths[2]
        for k in range(n_down - 1):
            cout = block_widths[min(k, len(block_widths) - 1)]
            self.blocks.append(_ResBlock(cin, cout, temb_dim))
            self.downs.append(nn.Conv2d(cout, cout, 3, 2, 1))
            cin = cout
        self.mid = _ResBlock(cin, cin, temb_dim)  # the residual conv pair
        self.out = nn.Conv2d(cin, out_dim, 1)

    def forward(self, condition: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        B, C, Fr, H, W = condition.shape
        x = condition.permute(0, 2, 1, 3, 4).reshape(B * Fr, C, H, W)
        temb = self.time_embed(self.time_proj(timestep.reshape(-1).float()).to(x.dtype))  # (B, temb)
        temb = temb.repeat_interleave(Fr, 0)
        x = self.stem(x)
        for block, down in zip(self.blocks, self.downs):
            x = down(block(x, temb))
        x = self.out(self.mid(x, temb))  # (B*F, D, h, w)
        x = x.view(B, Fr, *x.shape[1:])
        x = torch.stack([x[:, a:b].mean(1) for a, b in temporal_groups(Fr, self.temporal_compression)], 1)
        return x.permute(0, 1, 3, 4, 2).flatten(1, 3)  # (B, F'*h*w, D), row-major like the DiT's tokens
