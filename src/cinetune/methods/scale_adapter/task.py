"""Training task for Scale-Adapter (paper Sec. 4.2): the large and the small conditional models stay frozen, only
the adapters train, with Wan's flow-matching loss on the large model's prediction. Each training sample carries a
random non-empty subset of the condition kinds (each kept with probability keep_prob), so single conditions and
compositions are both trained; absent kinds are zero slots for the small model and left out of the routing."""

from __future__ import annotations

from pathlib import Path

import torch

from ...backbones import load_backbone
from ...training.config import TrainConfig
from ...training.flow import task_backbone
from ..control.config import kinds_of
from ..control.model import ControlModel
from ..control.task import ConditionedTask
from .config import block_list
from .model import ScaleAdapterModel, new_scale_adapter


class ScaleAdapterTask(ConditionedTask):
    latent_conditions = True  # the small conditional model takes condition latents in its concat slots

    def __init__(self, cfg: TrainConfig, device: torch.device):
        super().__init__(cfg, device)
        c = cfg.scale
        self.kinds = kinds_of(c.conditions, "scale.conditions")
        self.backbone = task_backbone(cfg, device, frozen=True)
        self.small = load_backbone(c.small_backbone).to(device)
        self.small.transformer.requires_grad_(False)
        small_control = ControlModel.load(c.small)
        torch.manual_seed(cfg.seed)
        adapter = new_scale_adapter(self.backbone, self.small, small_control, c.count, c.strategy,
                                    block_list(c.large_blocks), block_list(c.small_blocks), mce=c.mce,
                                    num_experts=c.num_experts, top_k=c.top_k, expert_rank=c.expert_rank).to(device)
        self.scale_model = ScaleAdapterModel(adapter, c.small, c.small_backbone, self.kinds)
        self.attach(self.scale_model.attach(self.backbone, True, self.small, small_control),
                    self.scale_model.modules(), c.clip_cache)

    def batch(self, step: int, micro: int, rank: int, world: int) -> dict:
        idx_t, gens, x0, emb = self.draw_cached(step, micro, rank, world)
        K = len(self.kinds)
        present = torch.stack([torch.rand(K, generator=g) < self.cfg.scale.keep_prob for g in gens])
        forced = torch.stack([torch.randint(0, K, (1,), generator=g) for g in gens]).flatten()
        present[torch.arange(len(gens)), forced] |= ~present.any(1)  # at least one kind per sample
        cond = {k: self.cache[f"cond_{k}"][idx_t].to(self.device) for k in self.kinds}
        keep = {k: present[:, i].to(self.device) for i, k in enumerate(self.kinds)}
        return {"x0": x0.to(self.device), "emb": emb.to(self.device), "cond": cond, "keep": keep, "gens": gens}

    def param_groups(self) -> list[dict]:
        return [{"params": self.att.trainable_parameters(), "lr_scale": 1.0}]

    def enable_gradient_checkpointing(self) -> None:
        self.backbone.transformer.enable_gradient_checkpointing()

    def export(self, out_dir: Path) -> None:
        self.scale_model.info = {"large": self.cfg.backbone, "init": self.cfg.init, "steps": self.cfg.steps,
                                 "preset": self.cfg.preset}
        self.scale_model.save(out_dir / "scale")
