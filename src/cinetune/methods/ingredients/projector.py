"""Ingredients' multi-scale Q-former projector (paper Sec. 3.2, Eq. 2): learnable queries plus tokens made from the
identity embedding attend, scale by scale, to a face encoder's multi-scale features; out come the identity tokens
the DiT's per-block cross-attention reads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResamplerLayer(nn.Module):
    """One Q-former layer: the latent tokens attend to [features, themselves] (Perceiver-resampler style), then an
    MLP; pre-norm residuals. x (N, L, D), feats (N, S, D) -> (N, L, D)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm_x, self.norm_f, self.norm_mlp = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.to_q, self.to_kv, self.to_out = nn.Linear(dim, dim, bias=False), nn.Linear(dim, 2 * dim, bias=False), \
            nn.Linear(dim, dim, bias=False)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        N, L, D = t.shape
        return t.view(N, L, self.heads, D // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        xn = self.norm_x(x)
        k, v = self.to_kv(torch.cat([self.norm_f(feats), xn], 1)).chunk(2, -1)
        o = F.scaled_dot_product_attention(self._split(self.to_q(xn)), self._split(k), self._split(v))
        x = x + self.to_out(o.transpose(1, 2).flatten(2))
        return x + self.mlp(self.norm_mlp(x))


class MultiScaleProjector(nn.Module):
    """(identity embedding (N, id_dim), per-scale features [(N, S_s, C_s)]) -> identity tokens (N, Q + T, out_dim).

    Q learnable queries and T tokens from an MLP on the identity embedding (the public code's 32 + 5) pass `depth`
    resampler layers per scale, each scale's features first projected to the projector width."""

    def __init__(self, id_dim: int, scale_dims: list[int], dim: int, out_dim: int, num_queries: int = 32,
                 id_tokens: int = 5, depth: int = 2, heads: int = 4):
        super().__init__()
        self.num_queries, self.id_tokens, self.dim = num_queries, id_tokens, dim
        self.queries = nn.Parameter(torch.randn(num_queries, dim) * dim ** -0.5)
        self.id_mlp = nn.Sequential(nn.Linear(id_dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, id_tokens * dim))
        self.scale_in = nn.ModuleList(nn.Linear(c, dim) for c in scale_dims)
        self.layers = nn.ModuleList(nn.ModuleList(ResamplerLayer(dim, heads) for _ in range(depth)) for _ in scale_dims)
        self.out = nn.Sequential(nn.Linear(dim, out_dim), nn.LayerNorm(out_dim))

    @property
    def num_tokens(self) -> int:
        return self.num_queries + self.id_tokens

    def forward(self, id_embedding: torch.Tensor, scales: list[torch.Tensor]) -> torch.Tensor:
        N = id_embedding.shape[0]
        x = torch.cat([self.queries.expand(N, -1, -1), self.id_mlp(id_embedding).view(N, self.id_tokens, self.dim)], 1)
        for proj, layers, feats in zip(self.scale_in, self.layers, scales):
            f = proj(feats)
            for layer in layers:
                x = layer(x, f)
        return self.out(x)
