"""The flow-matching task base (Wan 2.1 report, rectified flow) shared by the DiT and every method's training: a toy
backbone with a frozen VAE and text encoder, the latent cache, caption dropout for classifier-free guidance, and
the noised inputs and velocity targets of one batch."""

from __future__ import annotations

from pathlib import Path

import torch

from ..backbones import load_backbone
from ..toyworld import clip_seed, render_clip
from .cache import Column, load_or_build
from ..errors import CinetuneError
from .config import TrainConfig, init_dir
from .objectives import diffusion_inputs, flow_matching_inputs, is_flow_scheduler, sample_sigmas
from .task import Task


def task_backbone(cfg: TrainConfig, device: torch.device, frozen: bool):
    """cfg.backbone with cfg.init's transformer weights (random init when empty), in cfg.backbone_dtype, on `device`;
    the transformer frozen when `frozen` (methods train beside it), trainable otherwise (the DiT task)."""
    from ..backbones.memory import DTYPES

    dtype = DTYPES[cfg.backbone_dtype]
    # The transformer never comes from the shipped weights here: cfg.init names its weights, "" means fresh ones (a
    # from-scratch run must not silently fine-tune whatever model ships).
    backbone = load_backbone(cfg.backbone, random_init=not cfg.init, weights=False, dtype=dtype)
    if cfg.init:
        from ..core import load_pretrained

        init = load_pretrained(type(backbone.transformer), Path(init_dir(cfg.init, "transformer")), torch_dtype=dtype)
        _check_same_architecture(init, backbone.transformer, cfg)
        backbone.transformer = init
    backbone.to(device)
    if frozen:
        backbone.transformer.requires_grad_(False)
    return backbone


_ARCHITECTURE = ("num_layers", "num_attention_heads", "attention_head_dim", "in_channels", "out_channels", "patch_size")


def _check_same_architecture(init, built, cfg: TrainConfig) -> None:
    """An init of another size than cfg.backbone would train (and be recorded as) the wrong model."""
    norm = lambda v: tuple(v) if isinstance(v, (list, tuple)) else v  # noqa: E731  (JSON gives lists)
    diff = {k: (init.config.get(k), built.config.get(k)) for k in _ARCHITECTURE
            if k in built.config and norm(init.config.get(k)) != norm(built.config.get(k))}
    if diff:
        raise CinetuneError(f"init {cfg.init!r} is not a {cfg.backbone} transformer ("
                            + ", ".join(f"{k} {a} vs {b}" for k, (a, b) in diff.items())
                            + "); pass the matching backbone= or another init")


class FlowMatchingTask(Task):
    """Subclasses set self.backbone, then call `init_flow()`; `cache` holds the rows `cache_columns()` names."""

    backbone = None
    cache: dict | None = None

    def init_flow(self) -> None:
        self.view = self.backbone.view
        self.empty = self.backbone.text_encoder([""])[0]

    # -- data -------------------------------------------------------------------------------------------------------
    def render(self, i: int):
        """Training clip i as (clip, caption), the same clip as self.train_set[i]."""
        d = self.cfg.data
        return render_clip(clip_seed(d.seed, i), self.render_cfg, d.max_objects, d.max_actors)

    def build_cache(self, path: Path, n: int, columns: list[Column], chunk: int = 16, desc: str = "latent cache"
                    ) -> dict:
        return load_or_build(path, n, columns, self.render, self.backbone, self.cache_caption, chunk, desc)

    def cache_caption(self, i: int) -> str:
        """Cached clip i's caption (what render(i) returns as its text) without rendering it."""
        return self.train_set.caption(i)

    def drop_captions(self, emb: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
        """Caption dropout: each sample's text becomes the empty prompt's with probability data.caption_dropout."""
        drop = torch.cat([torch.rand(1, generator=g) for g in gens]) < self.cfg.data.caption_dropout
        return torch.where(drop[:, None, None], self.empty.cpu().expand_as(emb), emb.cpu())

    def draw_cached(self, step: int, micro: int, rank: int, world: int):
        """This process's cached clips for one micro-batch: (indices (B,), per-sample generators, latents x0, text
        embeddings with caption dropout applied)."""
        idx, gens = self.draw(step, micro, rank, world, self.cache["latents"].shape[0])
        idx_t = torch.tensor(idx)
        x0, emb = self.cache["latents"][idx_t], self.cache["text"][idx_t].float()
        return idx_t, gens, x0, self.drop_captions(emb, gens)

    def noisy(self, x0: torch.Tensor, gens: list[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(noisy latents, timesteps, target) by the backbone's own objective: flow matching at per-sample shifted
        sigmas (Wan, toy), or the DDPM-family prediction its scheduler names at uniform integer timesteps (CogVideoX:
        v-prediction over the scheduler's alphas_cumprod, SNR shift included, as its training code does)."""
        c, sched = self.cfg, self.backbone.scheduler
        flow = is_flow_scheduler(sched)
        if flow:  # per sample: its noise level (sigma, or an integer timestep) first, then its noise
            levels = torch.cat([sample_sigmas(1, c.timestep_shift, g, c.timestep_sampling, c.logit_mean, c.logit_std)
                                for g in gens])
        else:
            levels = torch.cat([torch.randint(0, int(sched.config.num_train_timesteps), (1,), generator=g)
                                for g in gens])
        noise = torch.stack([torch.randn(x0.shape[1:], generator=g) for g in gens]).to(x0.device)
        if flow:
            return flow_matching_inputs(x0, levels.to(x0.device), noise)
        return diffusion_inputs(x0, levels.to(x0.device), noise, sched.alphas_cumprod, sched.config.prediction_type)
