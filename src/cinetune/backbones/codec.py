"""Latent codec: pixel video (B,3,F,H,W) in [-1,1] <-> normalised latents (B,C,F',H',W') the DiT works in."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import CinetuneError

# Optional per-(channel, latent frame) statistics beside a VAE's config.json. Wan's causal VAE encodes frame 0 alone
# and carries a cache through the rest, so its latents' scale and mean depend on the latent frame: the shipped toy
# VAE's frame-0 std is 0.26-0.67 of the channel's std, the later frames' 1.1-1.4. With one per-channel statistic
# frame 0 then sits at half scale and has the lowest signal-to-noise ratio at every noise level, and generated first
# frames came out noisy. Real Wan / CogVideoX directories carry no such file and keep their per-channel convention.
FRAME_STATS = "cinetune_latents.json"


class LatentCodec(torch.nn.Module):
    """Wraps a diffusers VAE. Wan VAEs normalise with per-channel latents_mean / latents_std (as WanPipeline does),
    or per (channel, latent frame) where `frame_stats` ({"latents_mean", "latents_std"}: C lists of F' values; latent
    frames past the last use the last) is given; CogVideoX VAEs with a single scaling_factor."""

    def __init__(self, vae, frame_stats: dict | None = None):
        super().__init__()
        self.vae = vae.requires_grad_(False).eval()
        cfg = vae.config
        if frame_stats is not None:
            mean, std = (torch.tensor(frame_stats[k], dtype=torch.float32) for k in ("latents_mean", "latents_std"))
            if mean.ndim != 2 or std.ndim != 2:
                raise ValueError(f"per-frame latent statistics must be (C, F') tables, got mean {tuple(mean.shape)} "
                                 f"and std {tuple(std.shape)}")
            mean, std = mean[None, :, :, None, None], std[None, :, :, None, None]
        elif getattr(cfg, "latents_mean", None) is not None:
            mean = torch.tensor(cfg.latents_mean, dtype=torch.float32).view(1, -1, 1, 1, 1)
            std = torch.tensor(cfg.latents_std, dtype=torch.float32).view(1, -1, 1, 1, 1)
        else:
            z = cfg.latent_channels
            mean = torch.zeros(1, z, 1, 1, 1)
            std = torch.full((1, z, 1, 1, 1), 1.0 / cfg.scaling_factor)
        if mean.shape != std.shape:
            raise ValueError(f"latent statistics: mean {tuple(mean.shape)} and std {tuple(std.shape)} differ")
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.temporal = int(getattr(cfg, "scale_factor_temporal", None) or getattr(cfg, "temporal_compression_ratio", 4))
        self.spatial = int(getattr(cfg, "scale_factor_spatial", None) or 2 ** (len(cfg.block_out_channels) - 1))
        self.channels = int(mean.shape[1])

    @classmethod
    def from_dir(cls, vae, vae_dir: str | Path) -> "LatentCodec":
        """The codec of a VAE loaded from `vae_dir`, with that directory's per-frame statistics if it has them."""
        p = Path(vae_dir) / FRAME_STATS
        if not p.is_file():
            return cls(vae)
        try:
            stats = json.loads(p.read_text())
            codec = cls(vae, stats)
        except (ValueError, KeyError, TypeError) as e:  # JSONDecodeError is a ValueError
            raise CinetuneError(f"unreadable latent statistics {p}: {str(e).splitlines()[0] if str(e) else e!r}; "
                                "rewrite them with `cinetune latent-stats --vae DIR`") from None
        if codec.channels != getattr(vae.config, "z_dim", codec.channels):
            raise CinetuneError(f"latent statistics {p} have {codec.channels} channels, the VAE {vae.config.z_dim}")
        return codec

    @property
    def per_frame(self) -> bool:
        return self.mean.shape[2] > 1

    def stats(self, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(1,C,frames,1,1) mean and std for `frames` latent frames (or (1,C,1,1,1) per-channel ones)."""
        return _for_frames(self.mean, frames), _for_frames(self.std, frames)

    def tables(self) -> dict[str, torch.Tensor]:
        """The statistics as (C,F') tensors (F' = 1 per channel), as caches record them."""
        return {"latents_mean": self.mean[0, :, :, 0, 0].clone(), "latents_std": self.std[0, :, :, 0, 0].clone()}

    def frame_stats(self) -> dict | None:
        """The per-frame statistics as written to FRAME_STATS (None for per-channel ones)."""
        return {k: v.tolist() for k, v in self.tables().items()} if self.per_frame else None

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        return (self.channels, (frames - 1) // self.temporal + 1, height // self.spatial, width // self.spatial)

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        mean, std = self.stats(z.shape[2])
        return (z.float() - mean) / std

    def denormalize(self, latents: torch.Tensor) -> torch.Tensor:
        mean, std = self.stats(latents.shape[2])
        return latents.float() * std + mean

    @torch.no_grad()
    def encode(self, video: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        dist = self.vae.encode(video.to(self.vae.dtype)).latent_dist
        return self.normalize(dist.sample(generator) if sample else dist.mode())

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(self.denormalize(latents).to(self.vae.dtype)).sample.float().clamp(-1, 1)


def _for_frames(t: torch.Tensor, frames: int) -> torch.Tensor:
    """Statistics (1,C,F',1,1) for `frames` latent frames: per-channel ones broadcast, per-frame ones indexed, latent
    frames past the last using the last."""
    if t.shape[2] == 1:
        return t
    return t[:, :, torch.arange(frames, device=t.device).clamp_max(t.shape[2] - 1)]


def renormalize(latents: torch.Tensor, from_mean: torch.Tensor, from_std: torch.Tensor, codec: LatentCodec) -> torch.Tensor:
    """Latents (N,C,F',H',W') normalised with other statistics ((C,F') or (C,1)) re-expressed in `codec`'s: exact, as
    both are affine maps of the same raw VAE latents (how caches built before a statistics change are carried over)."""
    n = latents.shape[2]
    raw = latents.float() * _for_frames(from_std[None, :, :, None, None], n) + \
        _for_frames(from_mean[None, :, :, None, None], n)
    return codec.normalize(raw).to(latents.dtype)


def carry_over(data: dict, keys: list[str], codec: LatentCodec) -> bool:
    """Re-express a cache's latent entries `keys` in the codec's statistics when the cache recorded others (a cache
    without a record was written with the VAE config's per-channel statistics, the only kind before per-frame ones).
    Updates `data` in place, recording the codec's statistics; True when anything changed."""
    cfg, cur = codec.vae.config, codec.tables()
    if "latents_mean" in data:
        m, s = data["latents_mean"].float(), data["latents_std"].float()
    elif getattr(cfg, "latents_mean", None) is not None:
        m, s = torch.tensor(cfg.latents_mean)[:, None], torch.tensor(cfg.latents_std)[:, None]
    else:
        m, s = cur["latents_mean"], cur["latents_std"]
    same = m.shape == cur["latents_mean"].shape and torch.equal(m, cur["latents_mean"]) and \
        torch.equal(s, cur["latents_std"])
    if not same:
        for k in keys:
            data[k] = renormalize(data[k], m, s, codec)
    changed = not same or "latents_mean" not in data
    data.update(cur)
    return changed


@torch.no_grad()
def encode_modes(vae, clips: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """Raw latents (the posterior's mode) (N,C,F',H',W') of clips (N,3,F,H,W) in [-1,1], `batch` clips at a time."""
    return torch.cat([vae.encode(clips[i:i + batch].to(vae.dtype)).latent_dist.mode().float()
                      for i in range(0, len(clips), batch)])


def frame_stats_of(z: torch.Tensor) -> dict:
    """Per-(channel, latent frame) mean and std of raw latents (N,C,F',H',W'): the dict written to FRAME_STATS."""
    zf = z.float().permute(1, 2, 0, 3, 4).flatten(2)  # (C, F', N*H'*W')
    mean = zf.mean(2)
    std = (zf - mean[..., None]).pow(2).mean(2).sqrt().clamp_min(1e-3)
    return {"latents_mean": mean.tolist(), "latents_std": std.tolist()}


def measure_frame_stats(vae, clips: torch.Tensor, batch: int = 8) -> dict:
    """Per-(channel, latent frame) statistics of `vae`'s latents of clips (N,3,F,H,W) in [-1,1]."""
    return frame_stats_of(encode_modes(vae, clips, batch))
