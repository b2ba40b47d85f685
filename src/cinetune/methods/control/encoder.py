"""ControlNeXt's light control encoder (Peng et al. 2024, Sec. 3.2), made to land on a video DiT's token grid.

Per-frame 2-D convolutions (the public code has no temporal layers) in two parts:
- a timestep-free stem (three 3x3 convs, the first with stride 2) followed by causal temporal pooling onto the
  latent frames of a Wan-style VAE (latent frame 0 <- frame 0, latent frame k <- frames 4k-3..4k). It depends on
  the condition only, so a sampler computes it once per video (`features`), not once per denoising step;
- timestep-conditioned ResNet blocks with stride-2 downsampling to the patchify stride, a residual conv pair and a
  1x1 projection to the DiT's width, run at the latent frame rate (4x fewer frames than the public code's per-frame
  encoder, which pools nothing; the DiT sees latent frames anyway)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn

PUBLIC_WIDTHS = ((64, 64, 128), (128, 256), 256)  # stem, ResNet blocks, timestep embedding: the public code's


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(max(1, min(32, c // 4)), c)


def scaled_widths(hidden_size: int, reference: int = 1024) -> dict:
    """Encoder widths for a DiT of width `hidden_size`: the public code's at >= `reference` (Wan 1.3B: 1536), shrunk
    proportionally (to at least 1/8) below it, so the encoder stays a small fraction of a small backbone too."""
    f = min(1.0, max(hidden_size / reference, 1 / 8))
    r = lambda w: max(8, int(round(w * f / 8)) * 8)  # noqa: E731  (multiples of 8 keep GroupNorm groups whole)
    stem, blocks, temb = PUBLIC_WIDTHS
    return dict(widths=tuple(r(w) for w in stem), block_widths=tuple(r(w) for w in blocks), temb_dim=r(temb))


class _ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int):
        super().__init__()
        self.n1, self.c1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.t = nn.Linear(temb, cout)
        self.n2, self.c2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
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


def pool_frames(x: torch.Tensor, compression: int) -> torch.Tensor:
    """(B, F, ...) -> (B, F', ...): mean over each causal group (vectorised: frame 0 alone, the rest in blocks)."""
    if compression == 1:
        return x
    temporal_groups(x.shape[1], compression)  # validates the frame count
    rest = x[:, 1:].unflatten(1, (-1, compression)).mean(2)
    return torch.cat([x[:, :1], rest], 1)


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
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 2, 1), _norm(widths[0]), nn.ReLU(),
            nn.Conv2d(widths[0], widths[1], 3, 1, 1), _norm(widths[1]), nn.ReLU(),
            nn.Conv2d(widths[1], widths[2], 3, 1, 1), _norm(widths[2]), nn.ReLU())
        self.time_proj = Timesteps(temb_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(temb_dim, temb_dim)
        self.blocks, self.downs = nn.ModuleList(), nn.ModuleList()
        cin = widths[2]
        for k in range(n_down - 1):  # a ResNet block + stride-2 downsample per remaining factor of two
            cout = block_widths[min(k, len(block_widths) - 1)]
            self.blocks.append(_ResBlock(cin, cout, temb_dim))
            self.downs.append(nn.Conv2d(cout, cout, 3, 2, 1))
            cin = cout
        self.mid = _ResBlock(cin, cin, temb_dim)  # the residual conv pair
        self.out = nn.Conv2d(cin, out_dim, 1)

    def features(self, condition: torch.Tensor) -> torch.Tensor:
        """The timestep-free part: condition (B, C, F, H, W) -> stem features pooled to latent frames
        (B, F', C_stem, H/2, W/2)."""
        B, C, Fr, H, W = condition.shape
        x = self.stem(condition.transpose(1, 2).reshape(B * Fr, C, H, W))
        return pool_frames(x.view(B, Fr, *x.shape[1:]), self.temporal_compression)

    def forward(self, condition: torch.Tensor | None, timestep: torch.Tensor, features: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Tokens from the condition, or from its precomputed `features` (then `condition` may be None)."""
        x = self.features(condition) if features is None else features
        B, Fl = x.shape[:2]
        x = x.flatten(0, 1)
        temb = self.time_embed(self.time_proj(timestep.reshape(-1).float()).to(x.dtype))  # (B, temb)
        temb = temb.repeat_interleave(Fl, 0)
        for block, down in zip(self.blocks, self.downs):
            x = down(block(x, temb))
        x = self.out(self.mid(x, temb))  # (B*F', D, h, w)
        return x.view(B, Fl, *x.shape[1:]).permute(0, 1, 3, 4, 2).flatten(1, 3)  # (B, F'*h*w, D), DiT token order
