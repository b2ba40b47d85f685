"""DiT-ControlNet baseline (the dilated Wan ControlNet the Scale-Adapter paper compares against; docs/methods.md,
"Control in the ecosystem"): a pixel-space Conv3d encoder, the condition latents concatenated to the noisy latents,
copies of the first N base blocks, and one zero-initialised Linear per copy; main block k*stride receives the k-th
copy's residual. Zero projections make an untrained ControlNet an exact identity.

The public baseline exists for Wan (`DiTControlNet`); `CogVideoXControlNet` is the same branch for CogVideoX 1.0 and
1.5: copies of CogVideoXBlock carry the joint text stream through their own attention, the patch embedding copy is
CogVideoX's (text projection, per-frame Conv2d or temporal-patch Linear, positional embeddings) widened for the
control channels."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXTransformer3DModel
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


def _widened(base_w: torch.Tensor, new_w: torch.Tensor, latent_channels: int) -> None:
    """Fill new_w (D, L + E, ...) in place: the base's weights (D, L, ...) for the latents, tiled over the E control
    channels and divided by the repeats (so a control video like the latents starts as about one more latent)."""
    L, E = latent_channels, new_w.shape[1] - latent_channels
    reps = -(-E // L)
    new_w[:, :L] = base_w
    new_w[:, L:] = base_w.repeat(1, reps, *([1] * (base_w.ndim - 2)))[:, :E] / reps


def _zero_projections(dim: int, n: int) -> nn.ModuleList:
    """One zero-initialised Linear per copied block: an untrained branch adds nothing."""
    out = nn.ModuleList(nn.Linear(dim, dim) for _ in range(n))
    for p in out:
        nn.init.zeros_(p.weight)
        nn.init.zeros_(p.bias)
    return out


def _check_fit(num_blocks: int, stride: int, layers: int) -> None:
    if not 1 <= num_blocks <= layers or stride < 1 or (num_blocks - 1) * stride >= layers:
        raise CinetuneError(f"{num_blocks} ControlNet blocks with stride {stride} do not fit {layers} blocks")


def _encode(net, latents: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
    """condition (B, C_in, F, H, W) -> control features (B, E, F', h, w) matching latents (B, C, F', h, w)."""
    ctrl = net.encoder(condition.to(latents.dtype))
    if ctrl.shape[2:] != latents.shape[2:]:
        raise CinetuneError(f"condition encodes to {tuple(ctrl.shape[2:])}, latents are {tuple(latents.shape[2:])}: "
                            "the condition video must have the generated video's frames and size")
    return ctrl


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
        self.proj_out = _zero_projections(dim, num_blocks)
        self.gradient_checkpointing = False

    @classmethod
    def from_base(cls, transformer: nn.Module, num_blocks: int = 2, stride: int = 2, **kwargs) -> "DiTControlNet":
        if type(transformer).__name__ != "WanTransformer3DModel":
            raise CinetuneError(f"DiT-ControlNet supports Wan transformers, not {type(transformer).__name__}")
        c = transformer.config
        _check_fit(num_blocks, stride, c.num_layers)
        net = cls(dim=c.num_attention_heads * c.attention_head_dim, ffn_dim=c.ffn_dim, num_heads=c.num_attention_heads,
                  qk_norm=c.qk_norm, cross_attn_norm=c.cross_attn_norm, eps=c.eps, patch_size=tuple(c.patch_size),
                  latent_channels=c.in_channels, num_blocks=num_blocks, stride=stride, **kwargs)
        for copy, src in zip(net.blocks, transformer.blocks):
            copy.load_state_dict(src.state_dict())
        with torch.no_grad():
            w = transformer.patch_embedding.weight
            _widened(w, net.patch_embedding.weight, c.in_channels)
            net.patch_embedding.bias.copy_(transformer.patch_embedding.bias)
        return net if w.dtype == torch.float32 else net.to(w.dtype)

    def residuals(self, view, latents: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                  condition: torch.Tensor) -> dict[int, torch.Tensor]:
        """Residuals {main block index: (B, N, D)} for one denoiser call of the DiT behind `view`. latents
        (B, C, F', h, w); condition (B, C_in, F, H, W) in [-1, 1]."""
        transformer = view.transformer
        latents, encoder_hidden_states = latents.to(self.dtype), encoder_hidden_states.to(self.dtype)
        ctrl = _encode(self, latents, condition)
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


class CogVideoXControlNet(ModelMixin, ConfigMixin):
    """The DiT-ControlNet branch for a CogVideoXTransformer3DModel (1.0 or 1.5). `base_config` is the base's own
    config: the patch embedding and block copies are built from it as CogVideoX builds them."""

    @register_to_config
    def __init__(self, base_config: dict | None = None, in_channels: int = 3,
                 encoder_widths: tuple[int, int, int] = (192, 96, 48), spatial_stride: int = 8,
                 temporal_compression: int = 4, num_blocks: int = 2, stride: int = 2):
        super().__init__()
        self.encoder = PixelControlEncoder(in_channels, tuple(encoder_widths), spatial_stride, temporal_compression)
        cfg = {k: v for k, v in (base_config or {}).items() if not k.startswith("_")}
        # an N-block CogVideoX of the base's shape, latent input widened: its patch embedding and blocks are the copies
        donor = CogVideoXTransformer3DModel.from_config(
            {**cfg, "num_layers": num_blocks, "in_channels": cfg.get("in_channels", 16) + self.encoder.out_channels})
        self.patch_embed, self.blocks = donor.patch_embed, donor.transformer_blocks
        dim = donor.config.num_attention_heads * donor.config.attention_head_dim
        self.proj_out = _zero_projections(dim, num_blocks)
        self.gradient_checkpointing = False

    @classmethod
    def from_base(cls, transformer: nn.Module, num_blocks: int = 2, stride: int = 2, **kwargs) -> "CogVideoXControlNet":
        c = transformer.config
        _check_fit(num_blocks, stride, c.num_layers)
        base = {k: v for k, v in c.items() if not k.startswith("_")}  # (diffusers' private keys hold paths)
        net = cls(base_config=base, num_blocks=num_blocks, stride=stride, **kwargs)
        for dst, src in zip(net.blocks, transformer.transformer_blocks):
            dst.load_state_dict(src.state_dict())
        base_pe, pe = transformer.patch_embed, net.patch_embed
        with torch.no_grad():
            pe.text_proj.load_state_dict(base_pe.text_proj.state_dict())
            if c.patch_size_t is None:  # per-frame Conv2d (D, C, p, p)
                _widened(base_pe.proj.weight, pe.proj.weight, c.in_channels)
            else:  # Linear over (C, p_t, p, p) flattened channel-major
                D, k = base_pe.proj.weight.shape[0], base_pe.proj.weight.shape[1] // c.in_channels
                _widened(base_pe.proj.weight.view(D, c.in_channels, k), pe.proj.weight.view(D, -1, k), c.in_channels)
            if pe.proj.bias is not None:
                pe.proj.bias.copy_(base_pe.proj.bias)
            if isinstance(getattr(base_pe, "pos_embedding", None), nn.Parameter):  # learned positions (5B I2V)
                pe.pos_embedding.copy_(base_pe.pos_embedding)
        dtype = base_pe.proj.weight.dtype
        return net if dtype == torch.float32 else net.to(dtype)

    def residuals(self, view, latents: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                  condition: torch.Tensor) -> dict[int, torch.Tensor]:
        """Residuals {main block index: (B, N, D)}. latents (B, C, F', h, w) (the public layout; CogVideoX takes
        frames first); encoder_hidden_states (B, T, text_dim) before the text projection, as the base gets them."""
        tr = view.transformer
        latents, ehs = latents.to(self.dtype), encoder_hidden_states.to(self.dtype)
        ctrl = _encode(self, latents, condition)
        temb = tr.time_embedding(tr.time_proj(timestep).to(self.dtype))
        joint = self.patch_embed(ehs, view.to_model(torch.cat([latents, ctrl], 1)))
        text, x = joint[:, :ehs.shape[1]], joint[:, ehs.shape[1]:]
        rotary = view._cogvideox_rope(latents)
        out = {}
        for k, (block, proj) in enumerate(zip(self.blocks, self.proj_out)):
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                x, text = torch.utils.checkpoint.checkpoint(block, x, text, temb, rotary, use_reentrant=False)
            else:
                x, text = block(x, text, temb, rotary)
            out[k * self.config.stride] = proj(x)
        return out

    def enable_gradient_checkpointing(self) -> None:
        self.gradient_checkpointing = True


def controlnet_from_base(view, **kwargs) -> DiTControlNet | CogVideoXControlNet:
    """A fresh DiT-ControlNet branch for the DiT behind `view`."""
    klass = DiTControlNet if view.family == "wan" else CogVideoXControlNet
    return klass.from_base(view.transformer, **kwargs)


class DiTControlNetHandle(Handle):
    def __init__(self, net: DiTControlNet | CogVideoXControlNet, view, name: str):
        super().__init__(name=name)
        self.net, self.view, self.transformer = net, view, view.transformer
        idx = [k * net.config.stride for k in range(net.config.num_blocks)]
        self.add(add_residual_hooks(view.transformer, view.blocks, name, idx).remove)

    def set_inputs(self, latents: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                   condition: torch.Tensor | None, scale: float = 1.0) -> None:
        """Compute this call's residuals (None clears them)."""
        st = state_of(self.transformer)
        if condition is None:
            st.clear(self.name)
            return
        st.set_residuals(self.name, self.net.residuals(self.view, latents, timestep, encoder_hidden_states, condition))
        st.scales[self.name] = scale


def attach_dit_controlnet(net: DiTControlNet | CogVideoXControlNet, view, name: str = "dit-controlnet"
                          ) -> DiTControlNetHandle:
    family = "wan" if isinstance(net, DiTControlNet) else "cogvideox"
    if view.family != family:
        raise CinetuneError(f"this DiT-ControlNet was made for a {family} backbone, not {view.family}")
    c = net.config if family == "wan" else net.config.base_config
    width = c.dim if family == "wan" else c["num_attention_heads"] * c["attention_head_dim"]
    if width != view.hidden_size:
        raise CinetuneError(f"ControlNet width {width} does not match the backbone's {view.hidden_size}")
    if net.config.stride * (net.config.num_blocks - 1) >= view.num_blocks:
        raise CinetuneError(f"this ControlNet feeds block {net.config.stride * (net.config.num_blocks - 1)}; the "
                            f"backbone has {view.num_blocks}")
    return DiTControlNetHandle(net, view, name)
