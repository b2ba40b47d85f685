"""Training task of the latent frame interpolator (paper appendix 8): clean VAE latents of toy clips, every odd latent
frame rebuilt from its two neighbours, mean squared error; the text-to-video models are not involved."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ...backbones import load_backbone
from ...errors import CinetuneError
from ...training.cache import latents_column
from ...training.config import TrainConfig
from ...training.flow import FlowMatchingTask
from .interpolator import LatentInterpolator, interpolation_pairs


class InterpolatorTask(FlowMatchingTask):
    def __init__(self, cfg: TrainConfig, device: torch.device):
        super().__init__(cfg, device)
        if not cfg.data.latent_cache:
            raise CinetuneError("interpolator training needs data.latent_cache > 0 (it trains on cached latents)")
        if cfg.data.frames < 9:
            raise CinetuneError(f"interpolator training needs clips of >= 9 frames (3 latent frames), got {cfg.data.frames}")
        self.backbone = load_backbone(cfg.backbone, weights=False)  # only the VAE is used
        self.backbone.vae.to(device)
        path = Path(cfg.data.cache_path or Path(cfg.output_dir) / "latents.safetensors")
        self.cache = self.build_cache(path, cfg.data.latent_cache, [latents_column(self.backbone, device)])
        channels = self.cache["latents"].shape[1]
        self.model = LatentInterpolator(channels, tuple(cfg.distill.widths())).to(device)

    def enable_gradient_checkpointing(self) -> None:
        """A 0.24M-parameter U-Net has nothing worth recomputing."""

    def batch(self, step: int, micro: int, rank: int, world: int) -> dict:
        idx, _ = self.draw(step, micro, rank, world, self.cache["latents"].shape[0])
        return {"x0": self.cache["latents"][torch.tensor(idx)].float().to(self.device)}

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, dict]:
        kept, mids = interpolation_pairs(batch["x0"])
        B, C, K, H, W = kept.shape
        pairs = torch.cat([kept[:, :, :-1], kept[:, :, 1:]], 1).permute(0, 2, 1, 3, 4).reshape(B * (K - 1), 2 * C, H, W)
        target = mids.permute(0, 2, 1, 3, 4).reshape(B * (K - 1), C, H, W)
        return F.mse_loss(model(pairs).float(), target.float()), {}

    @torch.no_grad()
    def validate(self, out_dir: Path, step: int) -> dict:
        """Held-out clips (the validation seed): the interpolator's error against the average of the neighbours."""
        n = max(self.cfg.num_validation, 1)
        videos = torch.stack([self.val_set[i]["video"] for i in range(n)])
        lat = self.backbone.codec.encode(videos.to(self.device))
        kept, mids = interpolation_pairs(lat)
        self.model.eval()
        pred = self.model.middles(kept)
        self.model.train()
        blend = 0.5 * (kept[:, :, :-1] + kept[:, :, 1:])
        return {"val_mse": float(F.mse_loss(pred, mids)), "blend_mse": float(F.mse_loss(blend, mids))}

    def export(self, out_dir: Path) -> None:
        self.model.save_pretrained(out_dir / "interpolator", safe_serialization=True)
