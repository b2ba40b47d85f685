"""ControlNeXt for video DiTs (Peng et al. 2024, "ControlNeXt", Sec. 3.2-3.3, Eq. 8-10): a light control encoder
whose output is added to the DiT's hidden states after one block, bridged by Cross Normalization.

Cross-normalisation modes (docs/methods.md: the paper and the public code disagree; both are offered):
- "paper": Eq. 8-10, x_c' = (x_c - mu_m) / sqrt(var_m + eps) * gamma, with the main branch's statistics
  over n = h*w*c values (Eq. 8-9: one mean and variance per sample, over all tokens and channels) and a learnable
  per-channel gamma (initialised to 1). Per-channel statistics (the text's "channel-wise") blow up at init: a DiT's
  hidden states carry channels with large means and small spreads, so -mu/sigma dominates (flow-matching loss 2.1
  vs 0.26 at step 1 on toy-large), hence the equation's n;
- "code": the public code: re-standardise x_c to the main branch's mean and std, one scalar pair per sample (or
  per latent frame with stats="frame"), no learnable gamma;
- "zero" (default): a zero-initialised projection and plain addition (ControlNet's zero convolution; the paper's
  ablation baseline). Default because in `cinetune bench control` it adheres best of the four at toy scale (the
  highest canny F1 and lowest depth error at every checkpoint from step 100 on; the paper form's control enters at a
  few percent of the hidden states' scale and, like plain addition, stays near the bare model);
- "none": plain addition of the raw encoder output (the paper's Table 7 "addition" baseline).
"zero" is an exact identity at init. The cross-normalised modes are deliberately not (the paper's point is that
the control acts from the first step); control scale 0 or removing the adapter restores the base exactly.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ...errors import CinetuneError
from ...core import Handle, add_residual_hooks, state_of
from .encoder import ControlEncoder

NORMS = ("paper", "code", "zero", "none")


class ControlNeXtDiT(ModelMixin, ConfigMixin):
    """Trainable part of ControlNeXt-DiT: control encoder + cross-normalisation parameters."""

    @register_to_config
    def __init__(self, hidden_size: int = 256, in_channels: int = 3, spatial_stride: int = 8,
                 temporal_compression: int = 4, inject_block: int = 0, norm: str = "zero", stats: str = "sample",
                 eps: float = 1e-5, widths: tuple[int, ...] = (64, 64, 128), block_widths: tuple[int, ...] = (128, 256),
                 temb_dim: int = 256):
        super().__init__()
        if norm not in NORMS:
            raise CinetuneError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
        if stats not in ("sample", "frame"):
            raise CinetuneError(f"stats must be sample or frame, got {stats!r}")
        self.encoder = ControlEncoder(in_channels, hidden_size, spatial_stride, temporal_compression, widths, block_widths,
                                      temb_dim)
        self.gamma = nn.Parameter(torch.ones(hidden_size)) if norm == "paper" else None
        self.proj = None
        if norm == "zero":
            self.proj = nn.Linear(hidden_size, hidden_size)
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)

    def features(self, condition: torch.Tensor) -> torch.Tensor:
        """The timestep-free part of the encoder (once per video): (B, C, F, H, W) -> (B, F', C_stem, H/2, W/2)."""
        return self.encoder.features(condition)

    def encode(self, condition: torch.Tensor | None, timestep: torch.Tensor, features: torch.Tensor | None = None
               ) -> torch.Tensor:
        """condition (B, C, F, H, W) in [-1, 1] (or its `features`) -> control tokens (B, N, D)."""
        c = self.encoder(condition, timestep, features)
        return self.proj(c) if self.proj is not None else c

    def combine(self, h: torch.Tensor, c: torch.Tensor, scale: float, frames: int) -> torch.Tensor:
        """Merge control tokens c into the main branch h (both (B, N, D)); `frames` latent frames in N."""
        mode, eps = self.config.norm, self.config.eps
        c = c.to(h.dtype)
        if mode == "paper":
            mu = h.mean((1, 2), keepdim=True)
            var = h.var((1, 2), keepdim=True, unbiased=False)
            c = (c - mu) / torch.sqrt(var + eps) * self.gamma.to(h.dtype)
        elif mode == "code":
            if self.config.stats == "frame":
                B, N, D = h.shape
                hh, cc = h.view(B, frames, N // frames, D), c.view(B, frames, N // frames, D)
                dims = (2, 3)
            else:
                hh, cc, dims = h, c, (1, 2)
            cc = (cc - cc.mean(dims, keepdim=True)) * hh.std(dims, keepdim=True) / (cc.std(dims, keepdim=True) + eps) \
                + hh.mean(dims, keepdim=True)
            c = cc.reshape(h.shape)
        return h + scale * c


class ControlNeXtHandle(Handle):
    """Attachment of a ControlNeXt-DiT to one transformer: `set_condition` before each denoiser call."""

    def __init__(self, adapter: ControlNeXtDiT, transformer: nn.Module, blocks: nn.ModuleList, name: str):
        super().__init__(name=name)
        self.adapter, self.transformer = adapter, transformer
        self.frames = 1
        self.add(add_residual_hooks(transformer, blocks, name, [adapter.config.inject_block],
                                    combine=lambda h, r, s, i: adapter.combine(h, r, s, self.frames)).remove)

    def set_condition(self, condition: torch.Tensor | None, timestep: torch.Tensor | None = None,
                      scale: float = 1.0, features: torch.Tensor | None = None) -> None:
        """Encode `condition` (B, C, F, H, W) in [-1, 1] (or its precomputed `features`, see ControlNeXtDiT.features)
        for the next forward(s) at `timestep` (B,); both None clears. Features of batch b < B = len(timestep) are
        encoded once and repeated when all timesteps are equal (classifier-free guidance), else repeated first."""
        st = state_of(self.transformer)
        if condition is None and features is None:
            st.clear(self.name)
            return
        if features is None:
            features = self.adapter.features(condition)
        B, b = timestep.reshape(-1).shape[0], features.shape[0]
        if b != B and B % b == 0:
            t = timestep.reshape(-1)
            if bool((t == t[0]).all()):
                tokens = self.adapter.encode(None, t[:b], features).repeat(B // b, 1, 1)
            else:
                tokens = self.adapter.encode(None, t, features.repeat(B // b, *([1] * (features.ndim - 1))))
        else:
            tokens = self.adapter.encode(None, timestep, features)
        self.frames = features.shape[1]
        st.set_residuals(self.name, {self.adapter.config.inject_block: tokens})
        st.scales[self.name] = scale


def attach_controlnext(adapter: ControlNeXtDiT, view, name: str = "controlnext") -> ControlNeXtHandle:
    """Hook `adapter` into the DiT behind `view` (a backbones.VideoDiTView). Returns the handle."""
    if adapter.config.hidden_size != view.hidden_size:
        raise CinetuneError(f"ControlNeXt adapter width {adapter.config.hidden_size} does not match the backbone's "
                            f"{view.hidden_size}")
    if not 0 <= adapter.config.inject_block < view.num_blocks:
        raise CinetuneError(f"inject_block {adapter.config.inject_block} out of range ({view.num_blocks} blocks)")
    return ControlNeXtHandle(adapter, view.transformer, view.blocks, name)
