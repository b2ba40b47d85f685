"""The task interface of the shared trainer: what is trained (named updates, each with its parameter groups, its
optimizer, LR schedule and update period), how a batch is drawn, its losses, validation, export and any state a
resumed run needs.

A task draws every random number from generators seeded by (seed, step, position in the global batch), so a run
resumed from a checkpoint continues bit-identically without saving RNG states, and the process count does not
change what is trained."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..toyworld import RenderConfig, ToyWorldDataset
from .config import TrainConfig


def step_generator(seed: int, *keys: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0]))


@dataclass
class Update:
    """One optimizer of a task: its parameter groups ({"params": [...], "lr_scale": s}) trained at optim.lr * s *
    lr_scale, on the steps where step % every == offset (DMD2: the critic every step, the student every 5th). EMA
    (ema_decay > 0) averages the parameters of the updates with ema=True."""

    name: str
    groups: list[dict]
    every: int = 1
    offset: int = 0
    lr_scale: float = 1.0
    ema: bool = True

    def due(self, step: int) -> bool:
        return step % self.every == self.offset

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for g in self.groups for p in g["params"]]

    def steps_within(self, total: int) -> int:
        """How many of steps 0..total-1 this update runs on (its LR schedule's length)."""
        return len(range(self.offset, total, self.every))


class Task:
    model: torch.nn.Module  # the module handed to accelerate (all trainable parameters live under it)

    def __init__(self, cfg: TrainConfig, device: torch.device):
        self.cfg, self.device = cfg, device
        d = cfg.data
        self.render_cfg = RenderConfig(frames=d.frames, height=d.height, width=d.width)
        self.train_set = ToyWorldDataset(d.size, seed=d.seed, cfg=self.render_cfg, max_objects=d.max_objects,
                                         max_actors=d.max_actors, annotations=bool(d.foreground_weight))
        self.val_set = ToyWorldDataset(max(cfg.num_validation, 1), seed=d.seed + 1, cfg=self.render_cfg,
                                       max_objects=d.max_objects, max_actors=d.max_actors)

    # -- what trains ------------------------------------------------------------------------------------------------
    def param_groups(self) -> list[dict]:
        return [{"params": [p for p in self.model.parameters() if p.requires_grad], "lr_scale": 1.0}]

    def updates(self) -> list[Update]:
        """Default: one optimizer over param_groups(), every step."""
        return [Update("model", self.param_groups())]

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for u in self.updates() for p in u.parameters()]

    def update_loss(self, name: str, model, batch: dict) -> tuple[torch.Tensor, dict]:
        """The loss that update `name` minimises on this batch (one-update tasks: `loss`)."""
        return self.loss(model, batch)

    # -- state a resumed run needs besides weights and optimizers (e.g. per-timestep running means) ----------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what state_dict() returned (tasks without state accept only an empty dict)."""
        if state:
            raise ValueError(f"this task keeps no state, the checkpoint has {sorted(state)[:3]}")

    # -- data -------------------------------------------------------------------------------------------------------
    def draw(self, step: int, micro: int, rank: int, world: int, n: int) -> tuple[list[int], list[torch.Generator]]:
        """This process's share of one micro-batch: dataset indices and one generator per sample.

        Every random number belongs to a position in the step's global batch (batch_size x processes x grad_accum),
        so N processes, or N accumulation steps, with batch b train exactly like one process with batch N*b (up to
        float summation order)."""
        B = self.cfg.batch_size
        g = step_generator(self.cfg.seed, 1, step)
        idx = torch.randint(0, n, (B * world * self.cfg.grad_accum,), generator=g)
        positions = [micro * B * world + rank + k * world for k in range(B)]
        idx = self.reselect(idx, step)
        return [int(idx[p]) for p in positions], [step_generator(self.cfg.seed, 2, step, p) for p in positions]

    def reselect(self, idx: torch.Tensor, step: int) -> torch.Tensor:
        """Hook: the step's global batch of uniformly drawn indices -> the indices trained on (default: the same)."""
        return idx

    def enable_gradient_checkpointing(self) -> None:
        self.model.enable_gradient_checkpointing()

    def validate(self, out_dir: Path, step: int) -> dict:
        return {}
