"""Scale-Adapter (paper Sec. 4.3, Eq. 3-7): per paired (large block, small block), an attention module over the
small model's hidden states, a Mixture of Condition Experts (Eq. 3-4) and Feature Propagation (Eq. 5) whose
zero-initialised up-projection adds the result to the large block's output (Eq. 7).

Choices where the paper is silent (all configurable):
- the attention module (self-attention over tokens + cross-attention to the small model's text tokens) is
  initialised from the paired small block's attention weights ("trainable copies of the diffusion model block");
  it has no rotary embedding: the small model's hidden states already carry position;
- experts are MLPs on the attention output plus a zero-initialised timestep shift (the "E(x, t)"); the shared
  expert is a full MLP, each condition expert's ΔE a low-rank MLP whose output layer starts at zero, so every
  expert starts equal to the shared one ("condition-specific adaptation parameters");
- routing is per (sample, condition): g = softmax over the top-k of MLP([mean-pooled condition tokens; t]), the
  condition tokens coming from the condition's own latents (a patch embedding shared by all adapters), so an
  unseen condition type still routes by content; several conditions average their routed experts (Eq. 3's sum
  over k, normalised so the routing weights of one call sum to one);
- Feature Propagation: alpha = modulation (init 1) + time_proj(t_small) (init 0); x' = up(x_a) * alpha + up(h),
  one up-projection (zero-initialised: an untrained adapter is an exact identity).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ...errors import CinetuneError


class _MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, zero_out: bool = False):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        if zero_out:
            nn.init.zeros_(self.fc2.weight)
            nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class AdapterAttention(nn.Module):
    """Pre-norm self-attention over tokens + cross-attention to text tokens, residual, SDPA. x (B, N, d), text
    (B, L, d) -> (B, N, d)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim, elementwise_affine=False), nn.LayerNorm(dim, elementwise_affine=False)
        self.q1, self.k1, self.v1, self.o1 = (nn.Linear(dim, dim) for _ in range(4))
        self.q2, self.k2, self.v2, self.o2 = (nn.Linear(dim, dim) for _ in range(4))

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        split = lambda t: t.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # noqa: E731  (B, heads, N, d_h)
        return F.scaled_dot_product_attention(split(q), split(k), split(v)).transpose(1, 2).flatten(2)

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.o1(self._attend(self.q1(h), self.k1(h), self.v1(h)))
        h = self.norm2(x)
        return x + self.o2(self._attend(self.q2(h), self.k2(text), self.v2(text)))

    @torch.no_grad()
    def init_from_block(self, block: nn.Module) -> None:
        """Copy the q/k/v/out projections of the paired small block: a WanTransformerBlock's self- and text
        cross-attention (attn1 / attn2), or a CogVideoXBlock's one joint attention over text and video (attn1) into
        both."""
        cross = block.attn2 if getattr(block, "attn2", None) is not None else block.attn1
        for mine, theirs in ((("q1", "k1", "v1", "o1"), block.attn1), (("q2", "k2", "v2", "o2"), cross)):
            for name, src in zip(mine, (theirs.to_q, theirs.to_k, theirs.to_v, theirs.to_out[0])):
                getattr(self, name).load_state_dict(src.state_dict())


class ConditionExperts(nn.Module):
    """Mixture of Condition Experts: one shared expert + `num_experts` condition experts, top-k routing."""

    def __init__(self, dim: int, temb_dim: int, num_experts: int = 3, top_k: int = 2, hidden: int | None = None,
                 rank: int = 16, router_hidden: int = 64):
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise CinetuneError(f"top_k must be in 1..{num_experts}, got {top_k}")
        self.top_k, self.rank = top_k, rank
        self.time_shift = nn.Linear(temb_dim, dim)
        nn.init.zeros_(self.time_shift.weight)
        nn.init.zeros_(self.time_shift.bias)
        self.shared = _MLP(dim, hidden or dim)
        self.experts = nn.ModuleList(_MLP(dim, rank, zero_out=True) for _ in range(num_experts))
        self.router = nn.Sequential(nn.Linear(dim + temb_dim, router_hidden), nn.SiLU(),
                                    nn.Linear(router_hidden, num_experts))

    @property
    def num_experts(self) -> int:
        return len(self.experts)

    def route(self, cond_tokens: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """cond_tokens (B, M, d), temb (B, t) -> weights (B, E): exactly top_k non-zero, summing to one."""
        logits = self.router(torch.cat([cond_tokens.mean(1), temb.to(cond_tokens.dtype)], -1))
        top = logits.topk(self.top_k, dim=-1)
        return torch.zeros_like(logits).scatter(-1, top.indices, top.values.softmax(-1))

    def forward(self, x: torch.Tensor, temb: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """x (B, N, d), temb (B, t), weights (B, E) (rows sum to one) -> h (B, N, d) = E_s(x') + sum_e w_e dE_e(x'),
        x' = x + time_shift(t); only experts some sample routes to are run."""
        x = x + self.time_shift(temb.to(x.dtype))[:, None]
        h = self.shared(x)
        for e in torch.nonzero(weights.sum(0) > 0).flatten().tolist():
            h = h + weights[:, e, None, None].to(x.dtype) * self.experts[e](x)
        return h

    @torch.no_grad()
    def add_expert(self, init_from: int | None = None) -> int:
        """Append a condition expert, a copy of expert `init_from` (router row included) or fresh (output zero,
        router row the mean of the others). Returns its index."""
        if init_from is not None and not 0 <= init_from < self.num_experts:
            raise CinetuneError(f"no expert {init_from} to copy (have {self.num_experts})")
        ref = self.experts[init_from if init_from is not None else 0]
        new = copy.deepcopy(ref)
        if init_from is None:
            new.fc1.reset_parameters()
            nn.init.zeros_(new.fc2.weight)
            nn.init.zeros_(new.fc2.bias)
        self.experts.append(new)
        old = self.router[-1]
        lin = nn.Linear(old.in_features, old.out_features + 1).to(old.weight.device, old.weight.dtype)
        lin.weight[:-1], lin.bias[:-1] = old.weight, old.bias
        row = slice(init_from, init_from + 1) if init_from is not None else slice(None)
        lin.weight[-1], lin.bias[-1] = old.weight[row].mean(0), old.bias[row].mean()
        self.router[-1] = lin
        return self.num_experts - 1


class ScaleAdapterBlock(nn.Module):
    """One adapter: small hidden states (B, N, d) [+ text (B, L, d), small temb (B, d), per-condition tokens
    K x (B, M, d)] -> residual (B, N, D) for the paired large block's output."""

    def __init__(self, small_dim: int, large_dim: int, heads: int, temb_dim: int, mce: bool = True,
                 num_experts: int = 3, top_k: int = 2, expert_hidden: int | None = None, expert_rank: int = 16):
        super().__init__()
        self.attn = AdapterAttention(small_dim, heads)
        self.mce = ConditionExperts(small_dim, temb_dim, num_experts, top_k, expert_hidden, expert_rank) if mce else None
        self.modulation = nn.Parameter(torch.ones(large_dim))
        self.time_proj = nn.Linear(temb_dim, large_dim)
        self.up = nn.Linear(small_dim, large_dim)
        for lin in (self.time_proj, self.up):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, small: torch.Tensor, text: torch.Tensor, temb: torch.Tensor,
                cond_tokens: list[torch.Tensor] | None = None, present: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns (residual (B, N, D), routing weights (B, K, E) or None without MCE). present (B, K) bool: which
        of the K conditions each sample has (default all); absent ones leave its expert average."""
        xa = self.attn(small, text)
        alpha = self.modulation + self.time_proj(temb.to(xa.dtype))[:, None]  # Eq. 5, (B, 1, D)
        out = self.up(xa) * alpha
        if self.mce is None:
            return out, None
        if not cond_tokens:
            raise CinetuneError("the Mixture of Condition Experts needs the condition tokens")
        w = torch.stack([self.mce.route(c, temb) for c in cond_tokens], 1)  # (B, K, E)
        m = torch.ones(w.shape[:2], dtype=w.dtype, device=w.device) if present is None else present.to(w.dtype)
        mixed = (w * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp_min(1)  # Eq. 3 over K, rows sum to one
        h = self.mce(xa, temb, mixed)
        return out + self.up(h), w


class ScaleAdapter(ModelMixin, ConfigMixin):
    """All adapters of one (large, small) pair of backbones + the shared condition tokenizer."""

    @register_to_config
    def __init__(self, pairs: list[list[int]], small_dim: int = 128, large_dim: int = 256, heads: int = 2,
                 latent_channels: int = 16, patch_size: list[int] = (1, 2, 2), mce: bool = True, num_experts: int = 3,
                 top_k: int = 2, expert_hidden: int | None = None, expert_rank: int = 16, temb_dim: int | None = None):
        super().__init__()
        # temb_dim: the small model's timestep embedding width (Wan: its hidden width; CogVideoX: time_embed_dim)
        self.cond_embed = nn.Conv3d(latent_channels, small_dim, tuple(patch_size), tuple(patch_size)) if mce else None
        self.adapters = nn.ModuleList(
            ScaleAdapterBlock(small_dim, large_dim, heads, temb_dim or small_dim, mce, num_experts, top_k,
                              expert_hidden, expert_rank)
            for _ in pairs)

    @property
    def pairs(self) -> list[tuple[int, int]]:
        return [tuple(p) for p in self.config.pairs]

    def condition_tokens(self, latents: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Per condition: its VAE latents (B, C, F', h, w) -> tokens (B, M, d)."""
        if self.cond_embed is None:
            return []
        w = self.cond_embed.weight
        return [self.cond_embed(v.to(w.device, w.dtype)).flatten(2).transpose(1, 2) for v in latents.values()]

    def add_expert(self, init_from: int | None = None) -> int:
        """One more condition expert in every adapter (see ConditionExperts.add_expert); returns its index."""
        if not self.config.mce:
            raise CinetuneError("this Scale-Adapter has no Mixture of Condition Experts")
        idx = [a.mce.add_expert(init_from) for a in self.adapters][0]
        self.register_to_config(num_experts=self.adapters[0].mce.num_experts)
        return idx
