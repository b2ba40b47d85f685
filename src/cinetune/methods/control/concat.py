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


def _widened(old: nn.Module, extra: int) -> nn.Module:
    """A copy of the patch embedding's convolution (Wan: Conv3d, CogVideoX 1.0: Conv2d) taking `extra` more input
    channels, whose weights on them start at zero."""
    new = type(old)(old.in_channels + extra, old.out_channels, old.kernel_size, old.stride)
    new = new.to(old.weight.device, old.weight.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, :old.in_channels] = old.weight
        new.bias.copy_(old.bias)
    return new


class ConcatControlHandle(Handle):
    """Wan: the Conv3d `patch_embedding` takes (B, C, F, H, W); CogVideoX 1.0: `patch_embed.proj`, a per-frame Conv2d,
    inside a patch embedding that takes (text, (B, F, C, H, W)). CogVideoX 1.5 patchifies time into a Linear over
    flattened patches, where the slots would interleave with the latent channels: refused."""

    def __init__(self, transformer: nn.Module, kinds: list[str], latent_channels: int, name: str):
        super().__init__(name=name)
        kind = type(transformer).__name__
        cog = kind == "CogVideoXTransformer3DModel"
        if kind != "WanTransformer3DModel" and not (cog and getattr(transformer.config, "patch_size_t", None) is None):
            raise CinetuneError(f"channel-concat control supports Wan and CogVideoX 1.0 transformers, not {kind}"
                                + (" with a temporal patch (CogVideoX 1.5)" if cog else ""))
        if len(set(kinds)) != len(kinds) or not kinds:
            raise CinetuneError(f"condition kinds must be distinct and non-empty, got {kinds}")
        self.transformer, self.kinds, self.latent_channels = transformer, list(kinds), latent_channels
        owner, attr = (transformer.patch_embed, "proj") if cog else (transformer, "patch_embedding")
        old = getattr(owner, attr)
        self.base_in = old.in_channels
        new = self.patch_embedding = _widened(old, latent_channels * len(kinds))
        setattr(owner, attr, new)
        transformer.register_to_config(in_channels=new.in_channels)
        state = state_of(transformer)
        if cog:  # (text, image (B, F, C, H, W)): the slots join the image along its channels
            hook = transformer.patch_embed.register_forward_pre_hook(lambda m, args: (
                args[0], torch.cat([args[1], self._slots(args[1].transpose(1, 2), state).transpose(1, 2)], 2)))
        else:
            hook = new.register_forward_pre_hook(lambda m, args: (torch.cat([args[0], self._slots(args[0], state)], 1),))

        def restore() -> None:
            hook.remove()
            setattr(owner, attr, old)
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
    """Widen the patch embedding of the DiT behind `view` (Wan, CogVideoX 1.0) for `kinds` (e.g. ["canny", "depth"])."""
    return ConcatControlHandle(view.transformer, kinds, latent_channels, name)
