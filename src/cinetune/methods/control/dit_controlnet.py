"""DiT-ControlNet baseline (the dilated Wan ControlNet the Scale-Adapter paper compares against; docs/methods.md,
"Control in the ecosystem"): a pixel-space Conv3d encoder, the condition latents concatenated to the noisy latents,
copies of the first N base blocks, and one zero-initialised Linear per copy; main block k*stride receives the k-th
copy's residual. Zero projections make an untrained ControlNet an exact identity.

Wan backbones only (the public baseline exists for Wan); CogVideoX is refused with a clear error."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.transformers.transformer_wan import WanTransformerBlock
from torch import nn

from ...errors import CinetuneError
from ...core import Handle, add_residual_hooks, state_of


class PixelControlEncoder(nn.Module):
    """(B, C, F, H, W) in [-1, 1] -> (B, out, F', H/s, W/s): a (3, 2s+1, 2s+1) conv with spatial stride s (the VAE's
    spatial factor), then two temporal-stride-2 convs (F = 4k+1 -> k+1 frames, the VAE's time axis)."""

    def __init__(self, in_channels: int = 3, widths: tuple[int, int, int] = (192, 96, 48), spatial_stride: int = 8,
                 temporal_compression: int = 4):
        super().__init__()
        s = spatial_stride
        layers: list[nn.Module] = [nn.Conv3d(in_channels, widths[0], (3, 2 * s + 1, 2 * s + 1), (1, s, s), (1, s, s)),
                                   nn.GELU(), nn.GroupNorm(min(32, widths[0] // 4), widths[0])]
        cin, n_t = widths[0], {1: 0, 2: 1, 4: 2}.get(temporal_compression)
        if n_t is None:
            raise CinetuneError(f"temporal_compression must be 1, 2 or 4, got {temporal_compression}")
        for i, w in enumerate(widths[1:]):
            st = 2 if i < n_t else 1
            layers += [nn.Conv3d(cin, w, 3, (st, 1, 1), 1), nn.GELU(), nn.GroupNorm(min(32, w // 4), w)]
            cin = w
        self.net = nn.Sequential(*layers)
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DiTControlNet(ModelMixin, ConfigMixin):
    """Trainable ControlNet branch for a WanTransformer3DModel. Build with `from_base` (copies the first
    `num_blocks` base blocks and tiles the patch embedding) or load with `from_pretrained`."""

    @register_to_config
    def __init__(self, dim: int = 256, ffn_dim: int = 1024, num_heads: int = 4, qk_norm: str = "rms_norm_across_heads",
                 cross_attn_norm: bool = True, eps: float = 1e-6, patch_size: tuple[int, int, int] = (1, 2, 2),
                 latent_channels: int = 16, in_channels: int = 3, encoder_widths: tuple[int, int, int] = (192, 96, 48),
                 spatial_stride: int = 8, temporal_compression: int = 4, num_blocks: int = 2, stride: int = 2):
        super().__init__()
        self.encoder = PixelControlEncoder(in_channels, tuple(encoder_widths), spatial_stride, temporal_compression)
        self.patch_embedding = nn.Conv3d(latent_channels + self.encoder.out_channels, dim, tuple(patch_size),
                                         tuple(patch_size))
        self.blocks = nn.ModuleList(WanTransformerBlock(dim, ffn_dim, num_heads, qk_norm, cross_attn_norm, eps)
                                    for _ in range(num_blocks))
        self.proj_out = nn.ModuleList(nn.Linear(dim, dim) for _ in range(num_blocks))
        for p in self.proj_out:
            nn.init.zeros_(p.weight)
            nn.init.zeros_(p.bias)
        self.gradient_checkpointing = False

    @classmethod
    def from_base(cls, transformer: nn.Module, num_blocks: int = 2, stride: int = 2, **kwargs) -> "DiTControlNet":
        if type(transformer).__name__ != "WanTransformer3DModel":
            raise CinetuneError(f"DiT-ControlNet supports Wan transformers, not {type(transformer).__name__}")
        c = transformer.config
        if not 1 <= num_blocks <= c.num_layers or stride < 1 or (num_blocks - 1) * stride >= c.num_layers:
            raise CinetuneError(f"{num_blocks} ControlNet blocks with stride {stride} do not fit {c.num_layers} blocks")
        net = cls(dim=c.num_attention_heads * c.attention_head_dim, ffn_dim=c.ffn_dim, num_heads=c.num_attention_heads,
                  qk_norm=c.qk_norm, cross_attn_norm=c.cross_attn_norm, eps=c.eps, patch_size=tuple(c.patch_size),
                  latent_channels=c.in_channels, num_blocks=num_blocks, stride=stride, **kwargs)
        for copy, src in zip(net.blocks, transformer.blocks):
            copy.load_state_dict(src.state_dict())
        with torch.no_grad():  # patch embedding: base weights for the latents, tiled over the control channels
            w = transformer.patch_embedding.weight
            L = c.in_channels
            reps = -(-net.encoder.out_channels // L)
            net.patch_embedding.weight[:, :L] = w
            net.patch_embedding.weight[:, L:] = w.repeat(1, reps, 1, 1, 1)[:, :net.encoder.out_channels] / reps
            net.patch_embedding.bias.copy_(transformer.patch_embedding.bias)
        return net if w.dtype == torch.float32 else net.to(w.dtype)

    def residuals(self, transformer: nn.Module, latents: torch.Tensor, timestep: torch.Tensor,
                  encoder_hidden_states: torch.Tensor, condition: torch.Tensor) -> dict[int, torch.Tensor]:
        """Residuals {main block index: (B, N, D)} for one denoiser call. latents (B, C, F', h, w) as the backbone
        gets them; condition (B, C_in, F, H, W) in [-1, 1]."""
        ctrl = self.encoder(condition.to(latents.dtype))
        if ctrl.shape[2:] != latents.shape[2:]:
            raise CinetuneError(f"condition encodes to {tuple(ctrl.shape[2:])}, latents are {tuple(latents.shape[2:])}: "
                                "the condition video must have the generated video's frames and size")
        rotary = transformer.rope(latents)
        x = self.patch_embedding(torch.cat([latents, ctrl], 1)).flatten(2).transpose(1, 2).contiguous()
        _, tproj, ehs, _ = transformer.condition_embedder(timestep, encoder_hidden_states, None)
        tproj = tproj.unflatten(1, (6, -1))
        out = {}
        for k, (block, proj) in enumerate(zip(self.blocks, self.proj_out)):
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                x = torch.utils.checkpoint.checkpoint(block, x, ehs, tproj, rotary, use_reentrant=False)
            else:
                x = block(x, ehs, tproj, rotary)
            out[k * self.config.stride] = proj(x)
        return out

    def enable_gradient_checkpointing(self) -> None:
        self.gradient_checkpointing = True


class DiTControlNetHandle(Handle):
    def __init__(self, net: DiTControlNet, transformer: nn.Module, blocks: nn.ModuleList, name: str):
        super().__init__(name=name)
        self.net, self.transformer = net, transformer
        idx = [k * net.config.stride for k in range(net.config.num_blocks)]
        self.add(add_residual_hooks(transformer, blocks, name, idx).remove)

    def set_inputs(self, latents: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                   condition: torch.Tensor | None, scale: float = 1.0) -> None:
        """Compute this call's residuals (None clears them)."""
        st = state_of(self.transformer)
        if condition is None:
            st.clear(self.name)
            return
        st.set_residuals(self.name, self.net.residuals(self.transformer, latents, timestep, encoder_hidden_states,
                                                       condition))
        st.scales[self.name] = scale


def attach_dit_controlnet(net: DiTControlNet, view, name: str = "dit-controlnet") -> DiTControlNetHandle:
    if view.family != "wan":
        raise CinetuneError("DiT-ControlNet supports Wan backbones only")
    if net.config.dim != view.hidden_size:
        raise CinetuneError(f"ControlNet width {net.config.dim} does not match the backbone's {view.hidden_size}")
    return DiTControlNetHandle(net, view.transformer, view.blocks, name)
