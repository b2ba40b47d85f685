"""Training task for Scale-Adapter (paper Sec. 4.2): the large and the small conditional models stay frozen, only
the adapters train, with Wan's flow-matching loss on the large model's prediction. Each training sample carries a
random non-empty subset of the condition kinds (each kept with probability keep_prob), so single conditions and
compositions are both trained; absent kinds are zero slots for the small model and left out of the routing."""

from __future__ import annotations

from pathlib import Path

import torch

from ..adapters.control.model import ControlModel
from ..adapters.scale.model import ScaleAdapterModel, new_scale_adapter
from ..backbones import load_backbone
from ..errors import CinetuneError
from .config import TrainConfig
from .control_task import ControlTask, frozen_backbone
from .tasks import Task


def _ints(text: str) -> list[int] | None:
    try:
        return [int(x) for x in text.split(",") if x.strip()] or None
    except ValueError:
        raise CinetuneError(f"expected a comma list of block indices, got {text!r}") from None


class _ScaledDenoiser(torch.nn.Module):
    """Holds the trainable adapters (and the frozen large transformer) for accelerate; forward = small model +
    adapters + large model."""

    def __init__(self, large, attachment):
        super().__init__()
        self.transformer, self.adapter = large.transformer, attachment.model.adapter
        self.view, self.att = large.view, attachment

    def forward(self, xt, t, emb, cond, present=None):
        self.att.prepare(cond, present=present)
        self.att.before_step(xt, t, emb, 1.0)
        return self.view(xt, t, emb, module=self.transformer)


class ScaleAdapterTask(ControlTask):
    def __init__(self, cfg: TrainConfig, device: torch.device):
        Task.__init__(self, cfg, device)
        c = cfg.scale
        self.kinds = [k for k in c.conditions.split(",") if k]
        self.backbone = frozen_backbone(cfg, device)
        self.small = load_backbone(c.small_backbone).to(device)
        self.small.transformer.requires_grad_(False)
        small_control = ControlModel.load(c.small)
        torch.manual_seed(cfg.seed)
        adapter = new_scale_adapter(self.backbone, self.small, small_control, c.count, c.strategy,
                                    _ints(c.large_blocks), _ints(c.small_blocks), mce=c.mce,
                                    num_experts=c.num_experts, top_k=c.top_k, expert_rank=c.expert_rank).to(device)
        self.scale_model = ScaleAdapterModel(adapter, c.small, c.small_backbone, self.kinds)
        self.att = self.scale_model.attach(self.backbone, self.small, small_control)
        self.model = _ScaledDenoiser(self.backbone, self.att)
        self.empty = self.backbone.text_encoder([""])[0]
        self.latent_cache, self.clip_cache = True, c.clip_cache
        self.cache = self._load_or_build_cache()

    def batch(self, step: int, micro: int, rank: int, world: int) -> dict:
        idx_t, gens, x0, emb = self.draw_cached(step, micro, rank, world)
        K = len(self.kinds)
        present = torch.stack([torch.rand(K, generator=g) < self.cfg.scale.keep_prob for g in gens])
        forced = torch.stack([torch.randint(0, K, (1,), generator=g) for g in gens]).flatten()
        present[torch.arange(len(gens)), forced] |= ~present.any(1)  # at least one kind per sample
        cond = {k: self.cache[f"cond_{k}"][idx_t].to(self.device) for k in self.kinds}
        return {"x0": x0.to(self.device), "emb": emb.to(self.device), "cond": cond, "keep": present.to(self.device),
                "gens": gens}

    def param_groups(self) -> list[dict]:
        return [{"params": [p for p in self.model.adapter.parameters() if p.requires_grad], "lr_scale": 1.0}]

    def enable_gradient_checkpointing(self) -> None:
        self.backbone.transformer.enable_gradient_checkpointing()

    def export(self, out_dir: Path) -> None:
        self.scale_model.info = {"large": self.cfg.backbone, "init": self.cfg.init, "steps": self.cfg.steps,
                                 "preset": self.cfg.preset}
        self.scale_model.save(out_dir / "scale")
