"""Exponential moving average of trainable parameters (kept in fp32)."""

from __future__ import annotations

import torch


class EMA:
    def __init__(self, params: list[torch.nn.Parameter], decay: float):
        self.params, self.decay = params, decay
        self.shadow = [p.detach().float().clone() for p in params]

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self.shadow, [p.detach().float() for p in self.params], 1.0 - self.decay)

    @torch.no_grad()
    def copy_to(self, params: list[torch.nn.Parameter]) -> None:
        for s, p in zip(self.shadow, params):
            p.copy_(s.to(p.dtype))
