"""Ingredients' trainable module (paper Sec. 3.2): the multi-scale projector, one identity injector (cross-attention
+ ID router) per injected block and the zero-initialised input slot of the global facial embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .projector import MultiScaleProjector
from .router import IdentityInjector


class IngredientsModule(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, hidden_dim: int, blocks: tuple[int, ...], id_dim: int, scale_dims: tuple[int, ...],
                 latent_channels: int = 16, patch_size: tuple[int, int, int] = (1, 2, 2), token_dim: int = 0,
                 projector_dim: int = 128, num_queries: int = 8, id_tokens: int = 2, depth: int = 2, heads: int = 4,
                 router_dim: int = 64):
        super().__init__()
        token_dim = token_dim or hidden_dim
        self.projector = MultiScaleProjector(id_dim, list(scale_dims), projector_dim, token_dim, num_queries,
                                             id_tokens, depth, heads)
        n = self.projector.num_tokens
        self.injectors = nn.ModuleDict({str(i): IdentityInjector(hidden_dim, token_dim, n, heads, router_dim)
                                        for i in blocks})
        # The global embedding's input slot: a patch embedding of the canvas latents added to the DiT's own (the same
        # as widening its input channels with zero-initialised weights, without replacing the layer).
        self.slot = nn.Parameter(torch.zeros(hidden_dim, latent_channels, *patch_size))

    @property
    def blocks(self) -> list[int]:
        return [int(i) for i in self.injectors]

    def tokens(self, id_embedding: torch.Tensor, scales: list[torch.Tensor]) -> torch.Tensor:
        """(B*K, id_dim), [(B*K, S, C)] -> identity tokens (B*K, T, token_dim)."""
        return self.projector(id_embedding, scales)

    def slot_embedding(self, canvas: torch.Tensor) -> torch.Tensor:
        """Canvas latents (B, C, F', h, w) -> (B, D, F'', h'', w''), to add to the DiT's patch embedding output."""
        return F.conv3d(canvas.to(self.slot.dtype), self.slot, stride=tuple(self.config.patch_size))
