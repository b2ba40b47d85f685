"""Wan VAE training on toy clips: reconstruction, KL and an optional pixel temporal-difference term."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..backbones.codec import FRAME_STATS, encode_modes, frame_stats_of
from ..backbones.presets import get_preset
from ..errors import CinetuneError
from ..io import video_grid, write_json, write_video
from ..metrics.temporal import chunk_flicker
from ..toyworld import RenderConfig, ToyWorldDataset
from .config import TrainConfig, init_dir
from .objectives import motion_mse
from .task import Task


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of videos in [-1, 1] (peak-to-peak 2)."""
    mse = F.mse_loss(a.float(), b.float()).item()
    return float(10 * np.log10(4.0 / max(mse, 1e-12)))


class _VAEWithPosterior(torch.nn.Module):
    """Forward returns (reconstruction, posterior mean, posterior logvar) so DDP sees one forward call."""

    def __init__(self, vae, decoder_only: bool = False):
        super().__init__()
        self.vae, self.decoder_only = vae, decoder_only

    def forward(self, x: torch.Tensor, noise: torch.Tensor):
        if self.decoder_only:
            with torch.no_grad():
                h = self.vae.encode(x).latent_dist
            z = h.mode()  # what the DiTs are trained on and generate
        else:
            h = self.vae.encode(x).latent_dist
            z = h.mean + h.std * noise
        return self._decode_unclamped(z), h.mean, h.logvar

    def _decode_unclamped(self, z: torch.Tensor) -> torch.Tensor:
        # AutoencoderKLWan.decode clamps to [-1, 1], which zeroes the gradient of every overshooting pixel and
        # stalls training; this is the same causal frame-by-frame decode without the clamp.
        vae = self.vae
        vae.clear_cache()
        x = vae.post_quant_conv(z)
        frames = []
        for i in range(x.shape[2]):
            vae._conv_idx = [0]
            frames.append(vae.decoder(x[:, :, i:i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx,
                                      first_chunk=i == 0))
        vae.clear_cache()
        return torch.cat(frames, 2)


def _with_new_decoder(vae, base_dim: int):
    """A copy of `vae` whose decoder is freshly initialised at `base_dim` width; the encoder, both 1x1 latent convs
    and the config (latent statistics included) are kept, so the latents do not change."""
    from diffusers import AutoencoderKLWan

    wide = AutoencoderKLWan.from_config(vae.config, decoder_base_dim=base_dim)
    kept = {k: v for k, v in vae.state_dict().items() if not k.startswith("decoder.")}
    missing, unexpected = wide.load_state_dict(kept, strict=False)
    assert not unexpected and all(k.startswith("decoder.") for k in missing)
    return wide


class VAETask(Task):
    """Wan VAE reconstruction: MSE + 0.1 L1 + kl_weight * KL (mean over latent elements)."""

    def __init__(self, cfg: TrainConfig, device: torch.device):
        super().__init__(cfg, device)
        from diffusers import AutoencoderKLWan

        preset = get_preset(cfg.backbone)
        if cfg.init:
            vae = AutoencoderKLWan.from_pretrained(init_dir(cfg.init, "vae"), use_safetensors=True)
            if cfg.decoder_base_dim:
                vae = _with_new_decoder(vae, cfg.decoder_base_dim)
        else:
            vae = AutoencoderKLWan(**{**preset.vae, **({"base_dim": cfg.vae_base_dim} if cfg.vae_base_dim else {})})
            # Start nearly deterministic (posterior std e^-3): with a small KL weight, a unit-variance start buries
            # the latent mean in sampling noise and reconstruction stalls for hundreds of steps.
            with torch.no_grad():
                vae.quant_conv.bias[vae.config.z_dim:] = -6.0
        self.vae = vae.to(device)
        if cfg.decoder_only:
            self.vae.encoder.requires_grad_(False)
            self.vae.quant_conv.requires_grad_(False)
        self.model = _VAEWithPosterior(self.vae, cfg.decoder_only)

    def enable_gradient_checkpointing(self) -> None:
        self.vae.enable_gradient_checkpointing()

    def batch(self, step: int, micro: int, rank: int, world: int) -> dict:
        idx, gens = self.draw(step, micro, rank, world, len(self.train_set))
        videos = [self.train_set[i]["video"] for i in idx]
        c = self.cfg.data.crop
        if c:
            H, W = videos[0].shape[-2:]
            if c > min(H, W) or c % 4:
                raise CinetuneError(f"data.crop must be a multiple of 4 no larger than the frame, got {c}")
            offs = [(int(torch.randint(0, H - c + 1, (1,), generator=g)), int(torch.randint(0, W - c + 1, (1,), generator=g)))
                    for g in gens]
            videos = [v[..., y:y + c, x:x + c] for v, (y, x) in zip(videos, offs)]
        return {"video": torch.stack(videos).to(self.device), "gens": gens}

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, dict]:
        x = batch["video"]
        vc = self.vae.config
        shape = (vc.z_dim, (x.shape[2] - 1) // vc.scale_factor_temporal + 1,
                 x.shape[3] // vc.scale_factor_spatial, x.shape[4] // vc.scale_factor_spatial)
        noise = torch.stack([torch.randn(shape, generator=g) for g in batch["gens"]]).to(x.device)
        rec, mean, logvar = model(x, noise)
        rec = rec.float()
        mse = F.mse_loss(rec, x)
        kl = 0.5 * (mean.float() ** 2 + logvar.float().exp() - 1 - logvar.float()).mean()
        loss = mse + 0.1 * (rec - x).abs().mean() + (0.0 if self.cfg.decoder_only else self.cfg.kl_weight * kl)
        if self.cfg.data.motion_weight:
            # The same temporal-difference term as the DiT's, on pixels: the causal decoder's frames should change
            # from one to the next as the clip's do, also across its latent-chunk boundaries.
            loss = loss + self.cfg.data.motion_weight * motion_mse(rec, x, None)
        return loss, {"mse": mse.item(), "kl": kl.item()}

    @torch.no_grad()
    def validate(self, out_dir: Path, step: int) -> dict:
        """PSNR and chunk-boundary flicker (metrics.chunk_flicker) on held-out full-length clips (17 frames, the
        DiTs' clip length, whatever the training crop), plus a side-by-side GIF."""
        x = toy_clips(8, 17, self.cfg.data.seed + 1, self.cfg.data.height, self.cfg.data.width).to(self.device)
        self.vae.eval()
        rec = self.vae.decode(self.vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
        self.vae.train()
        from ..pipelines import to_uint8

        decoded = to_uint8(rec)
        pairs = [np.concatenate([u, v], 2) for u, v in zip(to_uint8(x[:4]), decoded[:4])]
        write_video(out_dir / "samples" / f"step-{step:07d}.gif", video_grid(pairs, cols=2))
        flicker = [chunk_flicker(v, self.vae.config.scale_factor_temporal) for v in decoded]
        return {"val_psnr": psnr(rec, x), "val_chunk_flicker": float(np.mean(flicker))}

    @torch.no_grad()
    def export(self, out_dir: Path) -> None:
        """Save the VAE with per-channel latent statistics so latents reach unit scale (WanPipeline convention; what
        diffusers' own pipelines read), and per-(channel, latent frame) ones beside them (what cinetune's codec reads).
        One pass over 64 held-out 33-frame clips: the causal encoder's first 5 latent frames are exactly those of the
        clips' first 17 frames, the DiTs' clip length, from which the per-channel statistics come as before."""
        self.vae.eval()
        d = self.cfg.data
        z = encode_modes(self.vae, toy_clips(64, 33, d.seed + 2, d.height, d.width).to(self.device))
        z17 = z[:, :, :5].transpose(0, 1).flatten(1)
        self.vae.register_to_config(latents_mean=z17.mean(1).tolist(), latents_std=z17.std(1).clamp_min(1e-3).tolist())
        self.vae.save_pretrained(out_dir / "vae", safe_serialization=True)
        write_json(out_dir / "vae" / FRAME_STATS, frame_stats_of(z))


def toy_clips(n: int, frames: int, seed: int, height: int = 64, width: int = 64) -> torch.Tensor:
    """Toy-world clips 0..n-1 of dataset `seed` -> (n,3,frames,H,W) in [-1,1]."""
    data = ToyWorldDataset(n, seed=seed, cfg=RenderConfig(frames=frames, height=height, width=width))
    return torch.stack([data[i]["video"] for i in range(n)])
