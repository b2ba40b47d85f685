"""Channel-concat control (Wan-Fun-Control style; docs/methods.md): condition latents are concatenated to the noisy
latents before the patch embedding, whose new input channels start at zero (an exact identity at init). One slot
of `latent_channels` per condition kind, so one model takes several kinds at once; a kind left out (or dropped in
training) is a zero slot, which is also how the model runs unconditionally.

Trained with the base fully fine-tuned or with LoRA (core.lora); the widened patch embedding always trains."""

from __future__ import annotations

import torch
from torch import nn

from ...errors import CinetuneError
from ...core import Handle, state_of


class ConcatControlHandle(Handle):
    def __init__(self, transformer: nn.Module, kinds: list[str], latent_channels: int, name: str):
        super().__init__(name=name)
        if type(transformer).__name__ != "WanTransformer3DModel":
            raise CinetuneError(f"channel-concat control supports Wan transformers, not {type(transformer).__name__}")
        if len(set(kinds)) != len(kinds) or not kinds:
            raise CinetuneError(f"condition kinds must be distinct and non-empty, got {kinds}")
        self.transformer, self.kinds, self.latent_channels = transformer, list(kinds), latent_channels
        old = transformer.patch_embedding
        self.base_in = old.in_channels
        new = nn.Conv3d(old.in_channels + latent_channels * len(kinds), old.out_channels, old.kernel_size, old.stride)
        new = new.to(old.weight.device, old.weight.dtype)
        with torch.no_grad():
            new.weight.zero_()
            new.weight[:, :old.in_channels] = old.weight
            new.bias.copy_(old.bias)
        self.patch_embedding = new
        transformer.patch_embedding = new
        transformer.register_to_config(in_channels=new.in_channels)
        state = state_of(transformer)
        hook = new.register_forward_pre_hook(lambda m, args: (torch.cat([args[0], self._slots(args[0], state)], 1),))

        def restore() -> None:
            hook.remove()
            transformer.patch_embedding = old
            transformer.register_to_config(in_channels=old.in_channels)
            state.clear(name)
        self.add(restore)

    def _slots(self, x: torch.Tensor, state) -> torch.Tensor:
        """(B, C*K, F', h, w): each kind's condition latents (zeros where absent or dropped)."""
        extra = state.extras.get(self.name, {})
        B, _, *grid = x.shape
        slots = []
        for k in self.kinds:
            c = extra.get(k)
            if c is None:
                c = x.new_zeros(B, self.latent_channels, *grid)
            elif c.shape != (B, self.latent_channels, *grid):
                raise CinetuneError(f"{k} condition latents {tuple(c.shape)} do not match the noisy latents "
                                    f"{(B, self.latent_channels, *grid)}")
            slots.append(c.to(x.dtype))
        return torch.cat(slots, 1)

    def set_condition(self, latents: dict[str, torch.Tensor] | None, keep: dict[str, torch.Tensor] | None = None) -> None:
        """Condition latents per kind, each (B, C, F', h, w) (the VAE encoding of the condition video, normalised
        like the noisy latents); None clears. keep[kind] (B,) bool zeroes the kind for samples where False
        (per-input dropout)."""
        st = state_of(self.transformer)
        if latents is None:
            st.clear(self.name)
            return
        unknown = set(latents) - set(self.kinds)
        if unknown:
            raise CinetuneError(f"this concat model takes {', '.join(self.kinds)}; got {', '.join(sorted(unknown))}")
        out = {}
        for k, v in latents.items():
            if keep is not None and k in keep:
                v = v * keep[k].to(v.dtype).view(-1, *([1] * (v.ndim - 1)))
            out[k] = v
        st.extras[self.name] = out


def attach_concat(view, kinds: list[str], latent_channels: int = 16, name: str = "concat") -> ConcatControlHandle:
    """Widen the patch embedding of the DiT behind `view` for `kinds` (e.g. ["canny", "depth", "pose"])."""
    if view.family != "wan":
        raise CinetuneError("channel-concat control supports Wan backbones only")
    return ConcatControlHandle(view.transformer, kinds, latent_channels, name)
