"""Training task for control adapters (ControlNeXt-DiT, DiT-ControlNet, channel concat) on a frozen toy backbone:
Wan's flow-matching loss with the adapter attached; conditions are the toy world's exact annotations (depth, pose,
segmentation, normal) or extracted from the clip's pixels as users will (canny, hed, scribble, lineart, mlsd)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...conditions import EXACT_KINDS, exact_condition, get_extractor
from ...core import AttachedDenoiser
from ...io import video_grid, write_video
from ...toyworld import clip_seed, render_clip
from ...training.cache import Column, latents_column, text_column
from ...training.config import TrainConfig
from ...training.flow import FlowMatchingTask, task_backbone
from .config import kinds_of
from .model import new_control_model

EXACT_SOURCE = {"depth": "depth", "pose": "pose", "segmentation": "segmentation", "normal": "normal"}


def training_condition(clip, kind: str) -> np.ndarray:
    """The condition video a user would give for this clip: exact annotations where the toy world has them (the
    stand-in for a good estimator), else the extractor on the clip's pixels."""
    if kind in EXACT_SOURCE and EXACT_SOURCE[kind] in EXACT_KINDS:
        return exact_condition(clip, EXACT_SOURCE[kind])
    return get_extractor(kind)(clip.video)


class ConditionedTask(FlowMatchingTask):
    """Flow matching with an attachment that takes condition videos (the control methods, Scale-Adapter): the
    cache holds each clip's conditions, the loss runs the attached denoiser, validation samples with them."""

    kinds: list[str]
    latent_conditions: bool  # the attachment takes condition latents (else condition pixels)

    def attach(self, attachment, modules: dict, clip_cache: int) -> None:
        self.att = attachment
        self.model = AttachedDenoiser(self.backbone, attachment, modules)
        self.init_flow()
        self.cache = self.build_cache(self._cache_path(), clip_cache, self.columns(self.kinds, self.latent_conditions),
                                      chunk=8, desc="control cache")

    # -- data -------------------------------------------------------------------------------------------------
    def _cache_path(self) -> Path:
        tag = "latents" if self.latent_conditions else "pixels"
        base = Path(self.cfg.data.cache_path or Path(self.cfg.output_dir) / "control-cache.safetensors")
        return base.with_name(f"{base.stem}-{'-'.join(self.kinds)}-{tag}{base.suffix}")

    def columns(self, kinds: list[str], latent: bool) -> list[Column]:
        """Latents, text and one condition column per kind: its VAE latents, or its (F,H,W,3) uint8 video."""
        cols = [latents_column(self.backbone, self.device), text_column(self.backbone)]
        for k in kinds:
            if latent:
                cols.append(latents_column(self.backbone, self.device, f"cond_{k}",
                                           pixels=lambda clip, k=k: training_condition(clip[0], k)))
            else:
                cols.append(Column(f"cond_{k}", lambda clips, k=k: torch.from_numpy(
                    np.stack([training_condition(c, k) for c, _ in clips]))))
        return cols

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, dict]:
        xt, t, target = self.noisy(batch["x0"], batch["gens"])
        pred = model(xt, t, batch["emb"], batch["cond"], batch["keep"])
        return F.mse_loss(pred.float(), target), {}

    # -- outputs ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, out_dir: Path, step: int) -> dict:
        """Condition | generated for a few held-out clips (controlled sampling with the current weights)."""
        from ...pipelines import TextToVideoPipeline

        self.model.eval()
        d = self.cfg.data
        clips = [render_clip(clip_seed(d.seed + 1, i), self.render_cfg, d.max_objects, d.max_actors)
                 for i in range(max(1, min(self.cfg.num_validation, 4)))]
        conds = {k: np.stack([training_condition(c, k) for c, _ in clips]) for k in self.kinds}
        pipe = TextToVideoPipeline(self.backbone, self.device)
        self.att.prepare(conds)
        view = self.backbone.view

        def fn(x, t, e, i):
            self.att.before_step(x, t, e, 1.0)
            return view(x, t, e)

        out = pipe([t for _, t in clips], frames=d.frames, height=d.height, width=d.width,
                   steps=self.cfg.validation_steps, guidance=5.0, seed=self.cfg.seed, progress=False, model_fn=fn)
        self.att.prepare(None)
        self.model.train()
        rows = [np.concatenate([conds[k][i] for k in self.kinds] + [out.videos[i]], 2) for i in range(len(clips))]
        write_video(out_dir / "samples" / f"step-{step:07d}.gif", video_grid(rows, cols=1))
        return {}


class ControlTask(ConditionedTask):
    def __init__(self, cfg: TrainConfig, device: torch.device):
        super().__init__(cfg, device)
        c = cfg.control
        self.kinds = kinds_of(c.conditions, "control.conditions")
        self.backbone = task_backbone(cfg, device, frozen=True)
        torch.manual_seed(cfg.seed)
        self.control = new_control_model(c.method, self.backbone, self.kinds,
                                         finetune=None if c.finetune == "auto" else c.finetune, lora_rank=c.lora_rank,
                                         **c.module_options())
        if self.control.module is not None:
            self.control.module.to(device)
        self.latent_conditions = self.control.condition_latents
        self.attach(self.control.attach(self.backbone, trainable=True), self.control.modules(), c.clip_cache)

    def batch(self, step: int, micro: int, rank: int, world: int) -> dict:
        idx_t, gens, x0, emb = self.draw_cached(step, micro, rank, world)
        if self.latent_conditions:
            cond = {k: self.cache[f"cond_{k}"][idx_t].to(self.device) for k in self.kinds}
        else:
            cond = torch.cat([self.cache[f"cond_{k}"][idx_t].permute(0, 4, 1, 2, 3).float().div(127.5).sub(1)
                              for k in self.kinds], 1).to(self.device)
        # per-condition dropout, every method: each kind left out independently, so any subset works at inference
        p = self.cfg.control.dropout
        keep = {k: (torch.cat([torch.rand(1, generator=g) for g in gens]) >= p).to(self.device) for k in self.kinds}
        return {"x0": x0.to(self.device), "emb": emb.to(self.device), "cond": cond, "keep": keep, "gens": gens}

    def param_groups(self) -> list[dict]:
        """Adapter layers at the base LR; fine-tuned base weights at lr * control.base_lr_scale."""
        return self.att.param_groups(self.cfg.control.base_lr_scale)

    def enable_gradient_checkpointing(self) -> None:
        self.backbone.transformer.enable_gradient_checkpointing()
        if hasattr(self.control.module, "enable_gradient_checkpointing"):
            self.control.module.enable_gradient_checkpointing()

    def export(self, out_dir: Path) -> None:
        model = self.att.collect()
        model.info = {"backbone": self.cfg.backbone, "init": self.cfg.init, "steps": self.cfg.steps,
                      "preset": self.cfg.preset}
        model.save(out_dir / "control")
