"""A trained control adapter as one object, one class per method behind core.protocol.AdapterModel: its condition
kinds, trainable module, fine-tuned base weights (as deltas) and LoRA; attach it to a backbone, save it to / load it
from a directory (safetensors + JSON only; the manifest names the method, so `ControlModel.load` builds the right
class)."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ...core import (Handle, add_lora, apply_trained_state, enable_finetune, load_lora_state, load_pretrained,
                     load_tensors, lora_state, read_manifest, save_tensors, select_parameters, state_of, trained_state,
                     write_adapter_dir)
from ...errors import CinetuneError
from .concat import attach_concat
from .controlnext import ControlNeXtDiT, attach_controlnext
from .dit_controlnet import CogVideoXControlNet, DiTControlNet, attach_dit_controlnet, controlnet_from_base
from .encoder import scaled_widths

SHIPPED_CONTROL = "toy-large-controlnext"  # shipped adapters load by name: <assets>/<name>/control
MANIFEST = "cinetune_control.json"
TENSOR_FILES = ("finetuned", "lora", "patch")


def condition_tensor(videos: dict[str, np.ndarray | torch.Tensor], kinds: list[str], subset: bool = False
                     ) -> torch.Tensor:
    """Condition videos per kind, each (F,H,W,3) / (B,F,H,W,3) uint8 or (B,3,F,H,W) float in [-1,1] -> channel
    concatenation in `kinds` order, (B, 3K, F, H, W) in [-1, 1]. `subset`: kinds not given are zero channels (what
    per-condition dropout trains as "left out"); at least one must be given."""
    missing = [k for k in kinds if k not in videos]
    if missing and (not subset or len(missing) == len(kinds)):
        raise CinetuneError(f"this adapter needs conditions {'among ' if subset else ''}{', '.join(kinds)}; missing "
                            f"{', '.join(missing)}")
    out = []
    for k in kinds:
        if k not in videos:
            out.append(None)
            continue
        v = videos[k]
        if isinstance(v, np.ndarray):
            v = torch.from_numpy(np.ascontiguousarray(v))
            if v.ndim == 4:
                v = v[None]
            v = v.permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0)
        out.append(v.float())
    given = [v for v in out if v is not None]
    shapes = {tuple(v.shape[2:]) for v in given}
    if len(shapes) > 1:
        raise CinetuneError(f"condition videos differ in frames/size: {sorted(shapes)}")
    return torch.cat([v if v is not None else torch.zeros_like(given[0]) for v in out], 1)


def weigh_kinds(cond: torch.Tensor, kinds: list[str], weights: dict[str, torch.Tensor | float]) -> torch.Tensor:
    """(B, 3K, F, H, W) with each kind's three channels times its weight: a float, or (B,) per sample (a training
    batch's dropout mask); kinds without a weight unchanged."""
    B = cond.shape[0]
    w = torch.ones(B, len(kinds), dtype=cond.dtype, device=cond.device)
    for i, k in enumerate(kinds):
        if k in weights:
            w[:, i] = torch.as_tensor(weights[k], dtype=cond.dtype, device=cond.device)
    return (cond.unflatten(1, (len(kinds), -1)) * w.view(B, len(kinds), 1, 1, 1, 1)).flatten(1, 2)


def repeat_to(c: torch.Tensor, B: int) -> torch.Tensor:
    """Repeat a per-video tensor (b, ...) to the call's batch B (classifier-free guidance doubles it)."""
    return c.repeat(B // c.shape[0], *([1] * (c.ndim - 1))) if c.shape[0] != B else c


class ControlModel:
    """Common state of every control method; subclasses set `method`, their module and their attachment."""

    method: ClassVar[str] = ""
    default_finetune: ClassVar[str] = ""  # regex of base weights trained with the adapter ("" = none)
    module_class: ClassVar[type | None] = None  # its trainable module (saved under module/), if any
    attachment: ClassVar[type]  # its ControlAttachment subclass
    condition_latents: ClassVar[bool] = False  # takes the conditions' VAE latents (else their pixels)

    def __init__(self, kinds: list[str], module: torch.nn.Module | None = None, finetune: str | None = None,
                 finetuned: dict | None = None, lora_rank: int = 0, lora: dict | None = None, info: dict | None = None):
        self.kinds, self.module = list(kinds), module
        self.finetune = self.default_finetune if finetune is None else finetune
        self.finetuned = dict(finetuned or {})  # deltas from the base weights
        self.lora_rank, self.lora, self.info = lora_rank, dict(lora or {}), dict(info or {})

    # -- construction ---------------------------------------------------------------------------------------------
    @classmethod
    def new(cls, backbone, kinds: list[str], finetune: str | None = None, lora_rank: int = 0, **module_kwargs
            ) -> "ControlModel":
        """A fresh (untrained) model of this method for `backbone`."""
        return cls(kinds, cls.new_module(backbone, list(kinds), **module_kwargs), finetune, lora_rank=lora_rank)

    @classmethod
    def new_module(cls, backbone, kinds: list[str], **kwargs) -> torch.nn.Module | None:
        if kwargs:
            raise CinetuneError(f"{cls.method} control takes no module options, got {', '.join(kwargs)}")
        return None

    @classmethod
    def module_class_at(cls, path: Path) -> type:
        """The class of the module saved at `path`."""
        return cls.module_class

    # -- use ------------------------------------------------------------------------------------------------------
    def attach(self, backbone, trainable: bool = False) -> "ControlAttachment":
        return self.attachment(self, backbone, trainable)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"control": self.module} if self.module is not None else {}

    def num_parameters(self) -> int:
        n = sum(p.numel() for p in self.module.parameters()) if self.module is not None else 0
        return n + sum(t.numel() for d in self._tensors().values() for t in d.values())

    # -- files ----------------------------------------------------------------------------------------------------
    def _tensors(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"finetuned": self.finetuned, "lora": self.lora}

    def _set_tensors(self, tensors: dict[str, dict[str, torch.Tensor]]) -> None:
        self.finetuned, self.lora = tensors["finetuned"], tensors["lora"]

    def save(self, path: str | Path) -> Path:
        def write(tmp: Path) -> None:
            if self.module is not None:
                self.module.save_pretrained(tmp / "module", safe_serialization=True)
            for name, tensors in self._tensors().items():
                if tensors:
                    save_tensors(tmp / f"{name}.safetensors", tensors, {"delta": name == "finetuned"})
        return write_adapter_dir(path, MANIFEST, {"method": self.method, "kinds": self.kinds,
                                                  "finetune": self.finetune, "lora_rank": self.lora_rank,
                                                  "info": self.info}, write)

    @classmethod
    def load(cls, path: str | Path) -> "ControlModel":
        """From a directory written by `save` (or the one above it), or a shipped adapter's name."""
        path, meta = read_manifest(path, MANIFEST, "control adapter")
        klass = CONTROL_METHODS.get(meta.get("method"))
        if klass is None or not isinstance(meta.get("kinds"), list):
            raise CinetuneError(f"{path / MANIFEST}: unknown control method {meta.get('method')!r} or no kinds; "
                                f"known methods: {', '.join(CONTROL_METHODS)}")
        module = (load_pretrained(klass.module_class_at(path / "module"), path / "module")
                  if klass.module_class is not None else None)
        model = klass(meta["kinds"], module, meta.get("finetune", ""), lora_rank=int(meta.get("lora_rank", 0)),
                      info=meta.get("info", {}))
        model._set_tensors({n: load_tensors(path / f"{n}.safetensors")[0] if (path / f"{n}.safetensors").is_file()
                            else {} for n in TENSOR_FILES})
        return model


class ControlAttachment(Handle, ABC):
    """A ControlModel attached to a backbone. `prepare(conditions)` once per generation (or batch), then
    `before_step(latents, timestep, encoder_hidden_states, scale)` before each denoiser call. Subclasses hook the
    method in (`_hook`) and set each call's state (`_step`)."""

    def __init__(self, model: ControlModel, backbone, trainable: bool = False):
        super().__init__(name=model.method)
        self.model, self.backbone = model, backbone
        tr = backbone.transformer
        # the fine-tuned weights as they were, to save deltas and to restore on removal (only those: a copy of a whole
        # frozen 14B would double its memory)
        self.base = None
        if trainable and model.finetune:
            names = set(select_parameters(tr, model.finetune))
            self.base = {n: p.detach().clone() for n, p in tr.named_parameters() if n in names}
        self.cond = self._full = None
        self.inner = self._hook()
        self.add(self.inner.remove)
        if model.finetuned:
            self.add(apply_trained_state(tr, model.finetuned, delta=True))
        if model.lora_rank:
            self.add(add_lora(tr, rank=model.lora_rank, name="cinetune-control").remove)
            if model.lora:
                load_lora_state(tr, model.lora, "cinetune-control")
        if trainable:
            self._make_trainable()

    @abstractmethod
    def _hook(self) -> Handle:
        """Hook the method into the backbone; returns the inner handle (its `name` owns the adapter state)."""

    def _make_trainable(self) -> None:
        tr = self.backbone.transformer
        grad_flags = {n: p.requires_grad for n, p in tr.named_parameters()}
        tr.requires_grad_(False)
        if self.model.finetune:
            enable_finetune(tr, self.model.finetune)
        if self.model.lora_rank:
            for n, p in tr.named_parameters():
                if "lora_" in n:
                    p.requires_grad_(True)
        for m in self.own_modules():
            m.requires_grad_(True)

        def restore_base() -> None:  # training changes base weights in place: removal puts them back
            with torch.no_grad():
                for n, p in tr.named_parameters():
                    if self.base is not None and n in self.base and p.shape == self.base[n].shape:
                        p.copy_(self.base[n])  # (a widened patch embedding is restored by its own handle)
                    if n in grad_flags:
                        p.requires_grad_(grad_flags[n])
        self.add(restore_base)

    def own_modules(self) -> list[torch.nn.Module]:
        """The adapter's own trainable layers (trained at the full LR); base weights it fine-tunes are not here."""
        return [self.model.module] if self.model.module is not None else []

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        params = [p for p in self.backbone.transformer.parameters() if p.requires_grad]
        ids = {id(p) for p in params}
        return params + [p for m in self.own_modules() for p in m.parameters() if p.requires_grad and id(p) not in ids]

    def param_groups(self, base_lr_scale: float) -> list[dict]:
        """Own layers at the base LR; fine-tuned base weights at lr * base_lr_scale."""
        own = [p for m in self.own_modules() for p in m.parameters() if p.requires_grad]
        ids = {id(p) for p in own}
        base = [p for p in self.backbone.transformer.parameters() if p.requires_grad and id(p) not in ids]
        return [{"params": own, "lr_scale": 1.0}] + ([{"params": base, "lr_scale": base_lr_scale}] if base else [])

    def collect(self) -> ControlModel:
        """The trained state as the ControlModel (fine-tuned weights as deltas from the base at attach time)."""
        m, tr = self.model, self.backbone.transformer
        if m.finetune and self.base is not None:
            own = {id(p) for mod in self.own_modules() for p in mod.parameters()}
            names = [n for n, p in tr.named_parameters() if p.requires_grad and "lora_" not in n and id(p) not in own]
            m.finetuned = trained_state(tr, names, self.base)
        if m.lora_rank:
            m.lora = lora_state(tr, "cinetune-control")
        return m

    def _clear(self) -> None:
        state_of(self.backbone.transformer).clear(self.inner.name)

    def prepare(self, conditions, keep: dict[str, torch.Tensor] | None = None) -> None:
        """Set the condition videos (per kind; or, in training, the batch's (B, 3K, F, H, W) tensor) for the next
        calls. keep: per-kind (B,) masks for per-input dropout (methods that support it)."""
        if conditions is None:
            self.cond = None
            self._clear()
            return
        dev = self.backbone.device
        if isinstance(conditions, torch.Tensor):  # already (B, 3K, F, H, W) in [-1, 1] (training batches)
            self.cond = conditions.to(dev)
        else:  # any subset of the kinds it was trained on: the others left out as dropout trains them
            self.cond = condition_tensor(conditions, self.model.kinds, subset=True).to(dev)
        if keep is not None:  # per-condition dropout: a dropped kind is zero channels
            self.cond = weigh_kinds(self.cond, self.model.kinds, {k: v.float() for k, v in keep.items()})
        self._full = self.cond

    def set_condition_weights(self, shares: dict[str, float]) -> None:
        """Each kind's share of the adapter's strength (per-condition scales and windows), at its input channels."""
        if self.cond is not None:
            self.cond = weigh_kinds(self._full, self.model.kinds, shares)

    def before_step(self, latents: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                    scale: float = 1.0) -> None:
        if self.cond is None or scale == 0.0:  # outside the guidance window: the bare base
            self._clear()
            return
        self._step(latents, timestep, encoder_hidden_states, scale)

    @abstractmethod
    def _step(self, latents, timestep, encoder_hidden_states, scale: float) -> None:
        """Set this denoiser call's adapter state (residuals or condition latents) at strength `scale`."""


# -- ControlNeXt -------------------------------------------------------------------------------------------------
class ControlNeXtAttachment(ControlAttachment):
    def _hook(self):
        self._features = None
        return attach_controlnext(self.model.module, self.backbone.view)

    def prepare(self, conditions, keep=None) -> None:
        super().prepare(conditions, keep)
        self._encode()

    def set_condition_weights(self, shares: dict[str, float]) -> None:
        super().set_condition_weights(shares)
        self._encode()

    def _encode(self) -> None:
        module = self.model.module  # the encoder's timestep-free part, once per video (and per change of weights)
        self._features = None if self.cond is None else module.features(self.cond.to(next(module.parameters()).dtype))

    def _step(self, latents, timestep, encoder_hidden_states, scale: float) -> None:
        self.inner.set_condition(None, timestep, scale, features=self._features)  # it repeats to the batch itself


class ControlNeXtModel(ControlModel):
    """ControlNeXt-DiT. Its selectively fine-tuned base subset is the self-attention output projections: the public
    code trains all attention outputs (SD1.5) or the cross-attention ones (SDXL); in a DiT the text cross-attention
    never sees the control's spatial layout while self-attention mixes it across tokens, and all attention outputs
    would be 11.5% of toy-large (8% at Wan 1.3B) against the paper's "< 10% learnable"."""

    method, default_finetune = "controlnext", r"attn1\.to_out"
    module_class, attachment = ControlNeXtDiT, ControlNeXtAttachment

    @classmethod
    def new_module(cls, backbone, kinds, **kwargs):
        view = backbone.view
        return ControlNeXtDiT(hidden_size=view.hidden_size, in_channels=3 * len(kinds),
                              spatial_stride=backbone.codec.spatial * view.patch_size[1],
                              temporal_compression=backbone.codec.temporal,
                              **{**scaled_widths(view.hidden_size), **kwargs})


# -- DiT-ControlNet ----------------------------------------------------------------------------------------------
class DiTControlNetAttachment(ControlAttachment):
    def _hook(self):
        return attach_dit_controlnet(self.model.module, self.backbone.view)

    def _step(self, latents, timestep, encoder_hidden_states, scale: float) -> None:
        self.inner.set_inputs(latents, timestep, encoder_hidden_states, repeat_to(self.cond, latents.shape[0]), scale)


class DiTControlNetModel(ControlModel):
    method, module_class, attachment = "dit-controlnet", DiTControlNet, DiTControlNetAttachment

    @classmethod
    def new_module(cls, backbone, kinds, **kwargs):
        return controlnet_from_base(backbone.view, in_channels=3 * len(kinds), spatial_stride=backbone.codec.spatial,
                                    temporal_compression=backbone.codec.temporal, **kwargs)

    @classmethod
    def module_class_at(cls, path: Path) -> type:
        """The saved branch's class (Wan or CogVideoX), from diffusers' config file."""
        try:
            name = json.loads((path / "config.json").read_text()).get("_class_name")
        except (OSError, ValueError, AttributeError):
            name = None  # load_pretrained reports the missing or corrupt file
        return CogVideoXControlNet if name == CogVideoXControlNet.__name__ else DiTControlNet


# -- channel concat ----------------------------------------------------------------------------------------------
class ConcatAttachment(ControlAttachment):
    def _hook(self):
        self._keep, self._shares = None, {}
        inner = attach_concat(self.backbone.view, self.model.kinds, self.backbone.codec.channels)
        if self.model.patch:
            inner.patch_embedding.load_state_dict(self.model.patch)
        return inner

    def own_modules(self) -> list[torch.nn.Module]:
        return [self.inner.patch_embedding]  # the widened patch embedding is the adapter's own layer

    def collect(self) -> ControlModel:
        m = super().collect()
        m.patch = {k: v.detach().clone() for k, v in self.inner.patch_embedding.state_dict().items()}
        return m

    def prepare(self, conditions, keep=None) -> None:
        """Condition videos per kind, encoded with the VAE here (or, in training, cached condition latents)."""
        if conditions is None:
            return super().prepare(None)
        dev, codec = self.backbone.device, self.backbone.codec
        self._keep, self._shares = keep, {}
        if all(isinstance(v, torch.Tensor) and v.ndim == 5 and v.shape[1] == codec.channels
               for v in conditions.values()):
            self.cond = {k: v.to(dev) for k, v in conditions.items()}
        else:
            if not any(k in conditions for k in self.model.kinds):
                raise CinetuneError(f"this adapter needs conditions among {', '.join(self.model.kinds)}; got "
                                    f"{', '.join(conditions) or 'none'}")
            self.cond = {k: codec.encode(condition_tensor({k: conditions[k]}, [k]).to(dev))
                         for k in self.model.kinds if k in conditions}

    def set_condition_weights(self, shares: dict[str, float]) -> None:
        self._shares = dict(shares)  # each kind's latents are its own slot: weighed there

    def _step(self, latents, timestep, encoder_hidden_states, scale: float) -> None:
        # concat has no residual to scale: the strength multiplies the condition latents
        B = latents.shape[0]
        keep = {k: v.repeat(B // v.shape[0]) for k, v in self._keep.items()} if self._keep else None
        self.inner.set_condition({k: repeat_to(v, B) * (scale * self._shares.get(k, 1.0)) for k, v in self.cond.items()},
                                 keep)


class ConcatModel(ControlModel):
    """Channel-concat control; fine-tunes the whole base unless LoRA is used."""

    method, attachment, condition_latents = "concat", ConcatAttachment, True

    def __init__(self, kinds, module=None, finetune=None, finetuned=None, lora_rank=0, lora=None, info=None,
                 patch: dict | None = None):
        if finetune is None:
            finetune = "" if lora_rank else r"."
        super().__init__(kinds, None, finetune, finetuned, lora_rank, lora, info)
        self.patch = dict(patch or {})  # the widened patch embedding

    def _tensors(self):
        return {**super()._tensors(), "patch": self.patch}

    def _set_tensors(self, tensors):
        super()._set_tensors(tensors)
        self.patch = tensors["patch"]


CONTROL_METHODS: dict[str, type[ControlModel]] = {c.method: c for c in (ControlNeXtModel, DiTControlNetModel,
                                                                         ConcatModel)}


def new_control_model(method: str, backbone, kinds: list[str], finetune: str | None = None, lora_rank: int = 0,
                      **module_kwargs) -> ControlModel:
    """A fresh (untrained) control model of `method` for `backbone` (finetune None: the method's default)."""
    if method not in CONTROL_METHODS:
        raise CinetuneError(f"unknown control method {method!r}; known: {', '.join(CONTROL_METHODS)}")
    return CONTROL_METHODS[method].new(backbone, kinds, finetune, lora_rank, **module_kwargs)
