"""A Scale-Adapter bound to its small conditional model: attach to a frozen large backbone, feed conditions, save
and load (safetensors + JSON). Per denoiser call the frozen small model runs once under no-grad on the same noisy
latents with the conditions in its concat slots; capture hooks read its paired blocks' hidden states, its text
tokens and its timestep embedding; the adapters turn them into residuals for the paired large blocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ...core import Handle, add_residual_hooks, load_pretrained, read_manifest, state_of, write_adapter_dir
from ...errors import CinetuneError
from ..control.model import ConcatModel, ControlModel, condition_tensor, repeat_to
from .module import ScaleAdapter
from .pairing import pair_blocks

MANIFEST = "cinetune_scale.json"
SHIPPED_SCALE = "toy-large-scale-adapter"
# Conditions the small model was not trained on enter through the slot of the most similar trained kind (edge-like
# through the edge slot, dense maps through the depth slot); the router then sees their own tokens.
SLOT_OF = {"canny": "canny", "hed": "canny", "scribble": "canny", "lineart": "canny", "mlsd": "canny",
           "depth": "depth", "normal": "depth", "segmentation": "depth", "pose": "pose"}


def slot_for(kind: str, trained: list[str], overrides: dict[str, str] | None = None) -> str:
    slot = (overrides or {}).get(kind) or (kind if kind in trained else SLOT_OF.get(kind))
    if slot not in trained:
        raise CinetuneError(f"condition {kind!r} has no slot in the small model (trained on {', '.join(trained)}); "
                            f"map it with kind=slot")
    return slot


@dataclass
class ScaleAdapterModel:
    adapter: ScaleAdapter
    small: str  # the small conditional model: a control adapter directory or shipped name (method concat)
    small_backbone: str  # its backbone preset / directory
    kinds: list[str]  # conditions trained with
    info: dict = field(default_factory=dict)
    slots: dict = field(default_factory=dict)  # unseen kind -> trained slot overrides (default SLOT_OF)
    _loaded: dict = field(default_factory=dict, repr=False)  # the small backbone / control model, loaded once
    method: ClassVar[str] = "scale-adapter"

    def save(self, path: str | Path) -> Path:
        return write_adapter_dir(path, MANIFEST, {"method": self.method, "small": self.small,
                                                  "small_backbone": self.small_backbone, "kinds": self.kinds,
                                                  "info": self.info},
                                 lambda tmp: self.adapter.save_pretrained(tmp / "adapter", safe_serialization=True))

    @classmethod
    def load(cls, path: str | Path) -> "ScaleAdapterModel":
        """From a directory written by `save` (or the one above it), or a shipped adapter's name."""
        path, meta = read_manifest(path, MANIFEST, "Scale-Adapter")
        missing = [k for k in ("small", "small_backbone", "kinds") if k not in meta]
        if missing:
            raise CinetuneError(f"{path / MANIFEST}: missing {', '.join(missing)}")
        return cls(load_pretrained(ScaleAdapter, path / "adapter"), meta["small"], meta["small_backbone"],
                   list(meta["kinds"]), meta.get("info", {}))

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"adapter": self.adapter}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.adapter.parameters())

    def attach(self, large, trainable: bool = False, small=None, small_control: ControlModel | None = None
               ) -> "ScaleAttachment":
        """large / small: backbones.Backbone (small loaded from `small_backbone` when None). The adapters train
        when `trainable`; both backbones stay frozen either way."""
        from ...backbones import load_backbone

        if small is None:
            if "backbone" not in self._loaded:
                self._loaded["backbone"] = load_backbone(self.small_backbone)
            small = self._loaded["backbone"]
        if small_control is None:
            if "control" not in self._loaded:
                self._loaded["control"] = ControlModel.load(self.small)
            small_control = self._loaded["control"]
        small.to(large.device)
        self.adapter.to(large.device)
        if trainable:
            self.adapter.requires_grad_(True)
        return ScaleAttachment(self, large, small, small_control)


def new_scale_adapter(large, small, small_control: ControlModel, count: int | None = 3, strategy: str = "ends",
                      large_blocks: list[int] | None = None, small_blocks: list[int] | None = None,
                      init_attention: bool = True, **kwargs) -> ScaleAdapter:
    """A fresh adapter set for (large, small) backbones; attention modules copied from the paired small blocks."""
    if not isinstance(small_control, ConcatModel):
        raise CinetuneError(f"the small conditional model must be a concat control model, got {small_control.method}")
    lv, sv = large.view, small.view
    if lv.patch_size != sv.patch_size or large.codec.spatial != small.codec.spatial:
        raise CinetuneError("large and small backbones must share the VAE and patch size (one-to-one token grids)")
    pairs = pair_blocks(lv.num_blocks, sv.num_blocks, count, strategy, large_blocks, small_blocks)
    heads = sv.transformer.config.num_attention_heads
    temb = sv.transformer.config.time_embed_dim if sv.family == "cogvideox" else None
    adapter = ScaleAdapter([list(p) for p in pairs], sv.hidden_size, lv.hidden_size, heads,
                           large.codec.channels, list(sv.patch_size), temb_dim=temb, **kwargs)
    if init_attention:
        for a, (_, j) in zip(adapter.adapters, pairs):
            a.attn.init_from_block(sv.blocks[j])
    return adapter


class ScaleAttachment(Handle):
    """`prepare(conditions)` once per video (condition videos or latents per kind), then `before_step(latents,
    timestep, encoder_hidden_states, scale)` before each call of the large model."""

    def __init__(self, model: ScaleAdapterModel, large, small, small_control: ControlModel):
        super().__init__(name="scale-adapter")
        self.model, self.large, self.small, self.small_control = model, large, small, small_control
        adapter = model.adapter
        lv, sv = large.view, small.view
        if adapter.config.large_dim != lv.hidden_size or adapter.config.small_dim != sv.hidden_size:
            raise CinetuneError(f"this Scale-Adapter joins widths {adapter.config.small_dim} -> "
                                f"{adapter.config.large_dim}; the backbones are {sv.hidden_size} -> {lv.hidden_size}")
        small.transformer.requires_grad_(False).eval()
        self.small_att = small_control.attach(small)
        self.add(self.small_att.remove)
        self.captured: dict = {}
        pairs = adapter.pairs
        hooks = [sv.blocks[j].register_forward_hook(self._capture(j)) for j in sorted({j for _, j in pairs})]
        hooks += self._capture_text_and_time(small.transformer, sv.family)
        self.add(lambda: [h.remove() for h in hooks])
        self.add(add_residual_hooks(large.transformer, lv.blocks, self.name, [i for i, _ in pairs]).remove)
        self.cond_latents: dict[str, torch.Tensor] | None = None
        self.present: torch.Tensor | None = None
        self._slots: dict[str, str] | None = None
        self.routing: torch.Tensor | None = None  # (B, adapters, K, E) of the last call

    def _capture_text_and_time(self, small_tr, family: str) -> list:
        """Hooks that keep the small model's timestep embedding and projected text: Wan's condition embedder
        returns both; CogVideoX's time embedding gives the one, its patch embedding (text tokens, then video) the
        other."""
        if family == "wan":
            return [small_tr.condition_embedder.register_forward_hook(
                lambda m, a, out: self.captured.update(temb=out[0], text=out[2]))]
        return [small_tr.time_embedding.register_forward_hook(lambda m, a, out: self.captured.update(temb=out)),
                small_tr.patch_embed.register_forward_hook(
                    lambda m, a, out: self.captured.update(text=out[:, :a[0].shape[1]]))]

    def _capture(self, j: int):
        def hook(module, args, output):
            self.captured[j] = output[0] if isinstance(output, tuple) else output
        return hook

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.adapter.parameters() if p.requires_grad]

    def prepare(self, conditions: dict[str, np.ndarray | torch.Tensor] | None,
                keep: dict[str, torch.Tensor] | None = None, slots: dict[str, str] | None = None) -> None:
        """conditions: {kind: video (F,H,W,3) uint8 / (B,3,F,H,W) in [-1,1], or VAE latents (B,C,F',h,w)}; kinds the
        small model was not trained on go through `slots` (default SLOT_OF). keep {kind: (B,) bool} (training):
        which kinds each sample has (the others are dropped from its small-model slot and its routing)."""
        if conditions is None:
            self.cond_latents = None
            self.small_att.prepare(None)
            state_of(self.large.transformer).clear(self.name)
            return
        codec, dev = self.large.codec, self.large.device
        lat = {}
        for k, v in conditions.items():
            if isinstance(v, torch.Tensor) and v.ndim == 5 and v.shape[1] == codec.channels:
                lat[k] = v.to(dev)
            else:
                with torch.no_grad():
                    lat[k] = codec.encode(condition_tensor({k: v}, [k]).to(dev))
        present = torch.stack([keep[k] for k in lat], 1) if keep is not None else None
        self._slots = slots
        self._feed(lat, present, {k: (present[:, i] if present is not None else 1.0) for i, k in enumerate(lat)})

    def _feed(self, lat: dict, present, weights: dict) -> None:
        """The small model's condition slots: each kind's latents times its weight ((B,) or a float), summed per slot;
        `present` (B, K) bool: which kinds the routing sees."""
        trained = self.small_control.kinds
        by_slot: dict[str, list[torch.Tensor]] = {}
        for k, v in lat.items():
            w = weights[k]
            on = w.to(v.dtype).view(-1, 1, 1, 1, 1) if isinstance(w, torch.Tensor) else float(w)
            by_slot.setdefault(slot_for(k, trained, self._slots or self.model.slots), []).append(v * on)
        self.small_att.prepare({s: torch.stack(vs).sum(0) for s, vs in by_slot.items()})
        self.cond_latents, self.present = lat, present

    def set_condition_weights(self, shares: dict[str, float]) -> None:
        """Per-condition strengths: each kind's share at its small-model slot; a kind at 0 also leaves the routing."""
        if self.cond_latents is None:
            return
        lat = self.cond_latents
        present = torch.tensor([[shares.get(k, 1.0) != 0.0 for k in lat]], device=next(iter(lat.values())).device)
        self._feed(lat, present, {k: shares.get(k, 1.0) for k in lat})

    def before_step(self, latents: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                    scale: float = 1.0) -> None:
        st = state_of(self.large.transformer)
        if self.cond_latents is None or scale == 0.0:
            st.clear(self.name)
            return
        B = latents.shape[0]
        with torch.no_grad():
            self.small_att.before_step(latents, timestep, encoder_hidden_states, 1.0)
            self.small.view(latents, timestep, encoder_hidden_states)
        adapter = self.model.adapter
        tokens = [repeat_to(t, B) for t in adapter.condition_tokens(self.cond_latents)]
        present = repeat_to(self.present, B) if self.present is not None else None
        res, routes = {}, []
        for a, (i, j) in zip(adapter.adapters, adapter.pairs):
            r, w = a(self.captured[j], self.captured["text"], self.captured["temb"], tokens, present)
            res[i] = r
            if w is not None:
                routes.append(w)
        self.routing = torch.stack(routes, 1).detach() if routes else None
        st.set_residuals(self.name, res)
        st.scales[self.name] = scale
