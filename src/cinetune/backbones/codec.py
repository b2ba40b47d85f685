"""Latent codec: pixel video (B,3,F,H,W) in [-1,1] <-> normalised latents (B,C,F',H',W') the DiT works in."""

from __future__ import annotations

import torch


class LatentCodec(torch.nn.Module):
    """Wraps a diffusers VAE. Wan VAEs normalise with per-channel latents_mean / latents_std (as WanPipeline does);
    CogVideoX VAEs with a single scaling_factor."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae.requires_grad_(False).eval()
        cfg = vae.config
        if hasattr(cfg, "latents_mean") and getattr(cfg, "latents_mean", None) is not None:
            mean = torch.tensor(cfg.latents_mean, dtype=torch.float32).view(1, -1, 1, 1, 1)
            std = torch.tensor(cfg.latents_std, dtype=torch.float32).view(1, -1, 1, 1, 1)
        else:
            z = cfg.latent_channels
            mean = torch.zeros(1, z, 1, 1, 1)
            std = torch.full((1, z, 1, 1, 1), 1.0 / cfg.scaling_factor)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.temporal = int(getattr(cfg, "scale_factor_temporal", None) or getattr(cfg, "temporal_compression_ratio", 4))
        self.spatial = int(getattr(cfg, "scale_factor_spatial", None) or 2 ** (len(cfg.block_out_channels) - 1))
        self.channels = int(mean.shape[1])

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        return (self.channels, (frames - 1) // self.temporal + 1, height // self.spatial, width // self.spatial)

    @torch.no_grad()
    def encode(self, video: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        dist = self.vae.encode(video.to(self.vae.dtype)).latent_dist
        z = dist.sample(generator) if sample else dist.mode()
        return (z.float() - self.mean) / self.std

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        z = latents.float() * self.std + self.mean
        return self.vae.decode(z.to(self.vae.dtype)).sample.float().clamp(-1, 1)
