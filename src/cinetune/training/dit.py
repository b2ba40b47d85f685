"""Text-to-video flow matching of a toy DiT on toy-world clips (frozen VAE + text encoder; the transformer trains)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CinetuneError
from ..io import video_grid, write_video
from .cache import Column, latents_column, text_column
from .config import TrainConfig
from .flow import FlowMatchingTask, task_backbone
from .objectives import PREDICTIONS, foreground_map, is_flow_scheduler, motion_mse, weighted_mse
from .task import step_generator

BASE_LORA = "cinetune-base"


class DiTTask(FlowMatchingTask):
    """Text-to-video flow matching on toy-world clips (frozen VAE + text encoder; the transformer trains)."""

    def __init__(self, cfg: TrainConfig, device: torch.device):
        super().__init__(cfg, device)
        self.backbone = task_backbone(cfg, device, frozen=False)
        scheduler = self.backbone.scheduler
        if not is_flow_scheduler(scheduler) and (not hasattr(scheduler, "alphas_cumprod") or getattr(
                scheduler.config, "prediction_type", None) not in PREDICTIONS):
            raise CinetuneError(f"{cfg.backbone}: training supports flow matching (Wan, toy) and DDPM-family "
                                f"schedules with {' / '.join(PREDICTIONS)} (CogVideoX); this one uses "
                                f"{type(scheduler).__name__}")
        self.model = self.backbone.transformer
        if cfg.lora_rank:  # the base frozen, a LoRA on its attention trains
            from ..core import add_lora

            self.model.requires_grad_(False)
            add_lora(self.model, rank=cfg.lora_rank, name=BASE_LORA)
        self.init_flow()
        if cfg.data.latent_cache:
            self.cache = self.load_cache()
        self.single = None
        if cfg.data.single_object_share:
            n = self.cache["latents"].shape[0] if self.cache is not None else min(len(self.train_set), 100_000)
            specs = (self.train_set.spec(i) for i in range(n))
            self.single = torch.tensor([i for i, sp in enumerate(specs) if len(sp.objects) == 1 and not sp.actors])
            if not len(self.single):
                raise CinetuneError("data.single_object_share: no clip with one object and no actor among the "
                                    f"{n} drawn from (max_objects={cfg.data.max_objects}, max_actors={cfg.data.max_actors})")

    # -- data -------------------------------------------------------------------------------------------------
    def load_cache(self) -> dict:
        """The latent cache at data.cache_path (default <output_dir>/latents.safetensors), grown to data.latent_cache
        clips."""
        path = Path(self.cfg.data.cache_path or Path(self.cfg.output_dir) / "latents.safetensors")
        return self.build_cache(path, self.cfg.data.latent_cache, self._columns(), desc="encoding latent cache")

    def _columns(self) -> list[Column]:
        cols = [latents_column(self.backbone, self.device), text_column(self.backbone)]
        if self.cfg.data.foreground_weight:
            cols.append(Column("foreground", lambda clips: self._foreground_of(
                [torch.from_numpy(c.instance) for c, _ in clips]).half()))
        return cols

    def _foreground_of(self, instances: list[torch.Tensor]) -> torch.Tensor:
        """Instance masks (F,H,W) per clip -> (b,T',H',W') foreground maps on the latent grid."""
        codec = self.backbone.codec
        return torch.cat([foreground_map(m[None], codec.temporal, codec.spatial) for m in instances])

    def reselect(self, idx: torch.Tensor, step: int) -> torch.Tensor:
        if self.single is None:
            return idx
        g = step_generator(self.cfg.seed, 3, step)
        take = torch.rand(len(idx), generator=g) < self.cfg.data.single_object_share
        return torch.where(take, self.single[torch.randint(0, len(self.single), (len(idx),), generator=g)], idx)

    def batch(self, step: int, micro: int, rank: int, world: int) -> dict:
        n = self.cache["latents"].shape[0] if self.cache is not None else len(self.train_set)
        idx, gens = self.draw(step, micro, rank, world, n)
        fg = None
        if self.cache is not None:
            x0, emb = self.cache["latents"][idx], self.cache["text"][idx].float()
            fg = self.cache["foreground"][idx].float() if "foreground" in self.cache else None
        else:
            items = [self.train_set[i] for i in idx]
            x0 = self.backbone.codec.encode(torch.stack([it["video"] for it in items]).to(self.device))
            emb = self.backbone.text_encoder([it["caption"] for it in items])
            if self.cfg.data.foreground_weight:
                fg = self._foreground_of([it["instance"] for it in items])
        emb = self.drop_captions(emb, gens)
        weight = None if fg is None else (1 + self.cfg.data.foreground_weight * fg).to(self.device)
        if self.image_step(step):
            x0, weight = x0[:, :, :1], None if weight is None else weight[:, :1]
        return {"x0": x0.to(self.device), "emb": emb.to(self.device), "gens": gens, "weight": weight}

    def image_step(self, step: int) -> bool:
        """Whether this step trains on images (data.image_share); keyed by the step alone, so every process and
        micro-batch of a step agrees."""
        share = self.cfg.data.image_share
        return bool(share) and float(torch.rand(1, generator=step_generator(self.cfg.seed, 4, step))) < share

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, dict]:
        xt, t, target = self.noisy(batch["x0"], batch["gens"])
        pred = self.view(xt, t, batch["emb"], module=model)
        loss = weighted_mse(pred, target, batch.get("weight"))
        if self.cfg.data.motion_weight and pred.shape[2] > 1:  # (an image has no frame-to-frame change)
            loss = loss + self.cfg.data.motion_weight * motion_mse(pred, target, batch.get("weight"))
        return loss, {}

    # -- outputs ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, out_dir: Path, step: int) -> dict:
        from ..pipelines import TextToVideoPipeline

        self.model.eval()
        pipe = TextToVideoPipeline(self.backbone, self.device)
        prompts = [self.val_set[i]["caption"] for i in range(len(self.val_set))]
        d = self.cfg.data
        out = pipe(prompts, frames=d.frames, height=d.height, width=d.width, steps=self.cfg.validation_steps,
                   guidance=5.0, seed=self.cfg.seed, progress=False)
        self.model.train()
        write_video(out_dir / "samples" / f"step-{step:07d}.gif", video_grid(list(out.videos)))
        (out_dir / "samples" / f"step-{step:07d}.txt").write_text("\n".join(prompts) + "\n")
        return {}

    def export(self, out_dir: Path) -> None:
        if self.cfg.lora_rank:  # diffusers' LoRA file (WanPipeline.load_lora_weights, `generate --lora`)
            from ..core import lora_state
            from ..core.lora_file import save_lora

            save_lora(out_dir / "lora", lora_state(self.model, BASE_LORA), self.backbone.preset.family)
            return
        self.model.save_pretrained(out_dir / "transformer", safe_serialization=True)
