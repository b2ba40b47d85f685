"""Ingredients' identity injection with the ID router (paper Sec. 3.2, Eq. 3-4): in each injected block, the video
tokens cross-attend to every identity's tokens; a router scores each token against each identity,
phi = f(H) . g(W_aggr F~n), and each token takes the attention output of its identity (hard: argmax, the paper) or a
softmax mix of all (soft: the public code); H~ = H + alpha * F-bar."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ROUTINGS = ("hard", "soft", "mask")  # mask: the ground-truth identity mask routes (stage-1 training)


def _mlp(din: int, dout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(din, dout), nn.GELU(), nn.Linear(dout, dout))


class IdentityInjector(nn.Module):
    """One injected block. forward(hidden_states (B, N, D), identity tokens (B, K, T, Dt), routing, labels) ->
    (term (B, N, D) to add to the block's attention output, router logits (B, N, K)).

    The output projection starts at zero, so an untrained injector adds nothing."""

    def __init__(self, dim: int, token_dim: int, num_tokens: int, heads: int, router_dim: int = 64):
        super().__init__()
        self.heads = heads
        self.to_q, self.to_k, self.to_v = nn.Linear(dim, dim), nn.Linear(token_dim, dim), nn.Linear(token_dim, dim)
        self.to_out = nn.Linear(dim, dim)
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)
        self.norm_h, self.norm_t = nn.LayerNorm(dim), nn.LayerNorm(token_dim)
        self.f, self.g = _mlp(dim, router_dim), _mlp(token_dim, router_dim)
        self.aggregate = nn.Linear(num_tokens, 1)  # W_aggr: the identity's tokens -> one

    def logits(self, h: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Eq. 3's phi: (B, N, D), (B, K, T, Dt) -> (B, N, K)."""
        agg = self.aggregate(self.norm_t(tokens).transpose(-1, -2)).squeeze(-1)  # (B, K, Dt)
        return torch.einsum("bnr,bkr->bnk", self.f(self.norm_h(h)), self.g(agg))

    def attend(self, h: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Cross-attention of the video tokens to each identity's tokens separately: -> (B, K, N, D)."""
        B, N, D = h.shape
        K, T = tokens.shape[1:3]
        d = D // self.heads
        q = self.to_q(h).view(B, 1, N, self.heads, d).transpose(2, 3).expand(B, K, self.heads, N, d)
        k = self.to_k(tokens).view(B, K, T, self.heads, d).transpose(2, 3)
        v = self.to_v(tokens).view(B, K, T, self.heads, d).transpose(2, 3)
        return F.scaled_dot_product_attention(q, k, v).transpose(2, 3).reshape(B, K, N, D)

    def forward(self, h: torch.Tensor, tokens: torch.Tensor, routing: str = "hard",
                labels: torch.Tensor | None = None, present: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """present (B, K) bool: which identity slots a sample fills (a batch pads fewer identities to K); absent
        slots get logits -inf, so no token routes to them."""
        logits = self.logits(h, tokens)
        if present is not None:
            logits = logits.masked_fill(~present[:, None, :], float("-inf"))
        weights = route_weights(logits, routing, labels, present)  # (B, N, K)
        mixed = torch.einsum("bnk,bknd->bnd", weights.to(h.dtype), self.attend(h, tokens))
        return self.to_out(mixed), logits


def route_weights(logits: torch.Tensor, routing: str, labels: torch.Tensor | None = None,
                  present: torch.Tensor | None = None) -> torch.Tensor:
    """(B, N, K) router logits -> per-token identity weights. hard: one-hot of the argmax (each token takes exactly
    one identity); soft: softmax; mask: one-hot of `labels` (B, N) (the identity index, -1 = no face: an equal mix of
    the present identities), so stage 1 learns the features before the router exists."""
    K = logits.shape[-1]
    if routing == "soft":
        return logits.softmax(-1)
    if routing == "mask":
        if labels is None:
            raise ValueError("mask routing needs the token labels")
        on = labels >= 0
        hot = F.one_hot(labels.clamp(min=0), K).to(logits.dtype)
        mix = torch.ones_like(hot) if present is None else present[:, None, :].to(hot.dtype).expand_as(hot)
        return torch.where(on[..., None], hot, mix / mix.sum(-1, keepdim=True).clamp(min=1))
    return F.one_hot(logits.argmax(-1), K).to(logits.dtype)
