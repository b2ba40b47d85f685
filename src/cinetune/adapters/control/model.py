"""A trained control adapter as one object: method, condition kinds, trainable modules and fine-tuned base weights;
attach it to a backbone, save it to / load it from a directory (safetensors + JSON only)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ...errors import CinetuneError
from ...io import atomic_dir
from ..base import (Handle, add_lora, read_manifest, state_of, apply_trained_state, enable_finetune, load_lora_state, load_tensors, lora_state,
                    save_tensors, trained_state)
from .concat import ConcatControlHandle, attach_concat
from .controlnext import ControlNeXtDiT, attach_controlnext
from .encoder import scaled_widths
from .dit_controlnet import DiTControlNet, attach_dit_controlnet

METHODS = ("controlnext", "dit-controlnet", "concat")
SHIPPED_CONTROL = "toy-large-controlnext"  # shipped adapters load by name: <assets>/<name>/control
MANIFEST = "cinetune_control.json"
# ControlNeXt's selectively fine-tuned base subset: the self-attention output projections. The public code trains all
# attention outputs (SD1.5) or the cross-attention ones (SDXL); in a DiT the text cross-attention never sees the
# control's spatial layout while self-attention mixes it across tokens, and all attention outputs would be 11.5% of
# toy-large (8% at Wan 1.3B) against the paper's "< 10% learnable".
CONTROLNEXT_FINETUNE = r"attn1\.to_out"


def condition_tensor(videos: dict[str, np.ndarray | torch.Tensor], kinds: list[str]) -> torch.Tensor:
    """Condition videos per kind, each (F,H,W,3) / (B,F,H,W,3) uint8 or (B,3,F,H,W) float in [-1,1] -> channel
    concatenation in `kinds` order, (B, 3K, F, H, W) in [-1, 1]."""
    missing = [k for k in kinds if k not in videos]
    if missing:
        raise CinetuneError(f"this adapter needs conditions {', '.join(kinds)}; missing {', '.join(missing)}")
    out = []
    for k in kinds:
        v = videos[k]
        if isinstance(v, np.ndarray):
            v = torch.from_numpy(np.ascontiguousarray(v))
            if v.ndim == 4:
                v = v[None]
            v = v.permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0)
        out.append(v.float())
    shapes = {tuple(v.shape[2:]) for v in out}
    if len(shapes) > 1:
        raise CinetuneError(f"condition videos differ in frames/size: {sorted(shapes)}")
    return torch.cat(out, 1)


@dataclass
class ControlModel:
    method: str
    kinds: list[str]
    module: torch.nn.Module | None = None  # ControlNeXtDiT / DiTControlNet (None for concat)
    finetune: str = ""  # regex of base parameters trained with it ("" = none)
    finetuned: dict[str, torch.Tensor] = field(default_factory=dict)  # deltas from the base weights
    lora_rank: int = 0
    lora: dict[str, torch.Tensor] = field(default_factory=dict)
    patch: dict[str, torch.Tensor] = field(default_factory=dict)  # concat: the widened patch embedding
    info: dict = field(default_factory=dict)  # training provenance (steps, base, ...)

    def __post_init__(self):
        if self.method not in METHODS:
            raise CinetuneError(f"unknown control method {self.method!r}; known: {', '.join(METHODS)}")

    # -- use --------------------------------------------------------------------------------------------------
    def attach(self, backbone, trainable: bool = False) -> "ControlAttachment":
        return ControlAttachment(self, backbone, trainable)

    # -- files ------------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        with atomic_dir(path) as tmp:
            if self.module is not None:
                self.module.save_pretrained(tmp / "module", safe_serialization=True)
            for name, tensors in (("finetuned", self.finetuned), ("lora", self.lora), ("patch", self.patch)):
                if tensors:
                    save_tensors(tmp / f"{name}.safetensors", tensors, {"delta": name == "finetuned"})
            (tmp / MANIFEST).write_text(json.dumps({"method": self.method, "kinds": self.kinds, "finetune": self.finetune,
                                                    "lora_rank": self.lora_rank, "info": self.info}, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ControlModel":
        """From a directory written by `save`, or a shipped adapter's name (e.g. toy-large-controlnext)."""
        path, meta = read_manifest(path, MANIFEST, "control", "control adapter")
        module = None
        if meta["method"] in ("controlnext", "dit-controlnet"):
            klass = ControlNeXtDiT if meta["method"] == "controlnext" else DiTControlNet
            try:
                module = klass.from_pretrained(path / "module", use_safetensors=True)
            except (OSError, ValueError) as e:
                raise CinetuneError(f"cannot load {path / 'module'}: {str(e).splitlines()[0]}") from None
        tensors = {n: (load_tensors(path / f"{n}.safetensors")[0] if (path / f"{n}.safetensors").is_file() else {})
                   for n in ("finetuned", "lora", "patch")}
        return cls(meta["method"], list(meta["kinds"]), module, meta.get("finetune", ""), tensors["finetuned"],
                   int(meta.get("lora_rank", 0)), tensors["lora"], tensors["patch"], meta.get("info", {}))

    def num_parameters(self) -> int:
        n = sum(p.numel() for p in self.module.parameters()) if self.module is not None else 0
        return n + sum(t.numel() for d in (self.finetuned, self.lora, self.patch) for t in d.values())


class ControlAttachment(Handle):
    """A ControlModel attached to a backbone. `prepare(conditions)` once per generation (or batch), then
    `before_step(latents, timestep, encoder_hidden_states, scale)` before each denoiser call."""

    def __init__(self, model: ControlModel, backbone, trainable: bool = False):
        super().__init__(name=model.method)
        self.model, self.backbone = model, backbone
        view, tr = backbone.view, backbone.transformer
        self.base = {n: p.detach().clone() for n, p in tr.named_parameters()} if trainable and model.finetune else None
        self.cond: torch.Tensor | None = None
        self._features: torch.Tensor | None = None  # ControlNeXt: the encoder's timestep-free part, once per video
        self._keep: dict[str, torch.Tensor] | None = None  # concat training: per-kind dropout masks
        m = model.method
        if m == "controlnext":
            self.inner = attach_controlnext(model.module, view)
        elif m == "dit-controlnet":
            self.inner = attach_dit_controlnet(model.module, view)
        else:
            self.inner: ConcatControlHandle = attach_concat(view, model.kinds, backbone.codec.channels)
            if model.patch:
                self.inner.patch_embedding.load_state_dict(model.patch)
        self.add(self.inner.remove)
        if model.finetuned:
            self.add(apply_trained_state(tr, model.finetuned, delta=True))
        if model.lora_rank:
            self.add(add_lora(tr, rank=model.lora_rank, name="cinetune-control").remove)
            if model.lora:
                load_lora_state(tr, model.lora, "cinetune-control")
        if trainable:
            grad_flags = {n: p.requires_grad for n, p in tr.named_parameters()}
            self._make_trainable()

            def restore_base() -> None:  # training changes base weights in place: removal puts them back
                with torch.no_grad():
                    for n, p in tr.named_parameters():
                        if self.base is not None and n in self.base and p.shape == self.base[n].shape:
                            p.copy_(self.base[n])  # (the widened patch embedding is restored by its own handle)
                        if n in grad_flags:
                            p.requires_grad_(grad_flags[n])
            self.add(restore_base)

    def _make_trainable(self) -> None:
        tr = self.backbone.transformer
        tr.requires_grad_(False)
        if self.model.finetune:
            enable_finetune(tr, self.model.finetune)
        if self.model.lora_rank:
            for n, p in tr.named_parameters():
                if "lora_" in n:
                    p.requires_grad_(True)
        if self.model.method == "concat":
            self.inner.patch_embedding.requires_grad_(True)
        if self.model.module is not None:
            self.model.module.requires_grad_(True)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        params = [p for p in self.backbone.transformer.parameters() if p.requires_grad]
        if self.model.module is not None:
            params += [p for p in self.model.module.parameters() if p.requires_grad]
        return params

    def collect(self) -> ControlModel:
        """The trained state as a ControlModel (fine-tuned weights as deltas from the base at attach time)."""
        m = self.model
        tr = self.backbone.transformer
        if m.finetune and self.base is not None:
            names = [n for n, p in tr.named_parameters() if p.requires_grad and "lora_" not in n
                     and not n.startswith("patch_embedding")]
            m.finetuned = trained_state(tr, names, self.base)
        if m.lora_rank:
            m.lora = lora_state(tr, "cinetune-control")
        if m.method == "concat":
            m.patch = {k: v.detach().clone() for k, v in self.inner.patch_embedding.state_dict().items()}
        return m

    def prepare(self, conditions: dict[str, np.ndarray | torch.Tensor] | None, keep: dict[str, torch.Tensor] | None = None
                ) -> None:
        """Set the condition videos (per kind) for the next calls; concat encodes them with the VAE here. keep
        (concat, training): per-kind (B,) masks for per-input dropout."""
        self._features = None
        if conditions is None:
            self.cond = None
            state_of(self.backbone.transformer).clear(self.inner.name)
            return
        dev = next(self.backbone.transformer.parameters()).device
        if self.model.method == "concat":
            self._keep = keep
            if all(isinstance(v, torch.Tensor) and v.ndim == 5 and v.shape[1] == self.backbone.codec.channels
                   for v in conditions.values()):
                self.cond = {k: v.to(dev) for k, v in conditions.items()}  # cached condition latents (training)
            else:
                self.cond = {k: self.backbone.codec.encode(condition_tensor({k: conditions[k]}, [k]).to(dev))
                             for k in self.model.kinds if k in conditions}
            return
        if isinstance(conditions, torch.Tensor):  # already (B, 3K, F, H, W) in [-1, 1] (training batches)
            self.cond = conditions.to(dev)
        else:
            self.cond = condition_tensor(conditions, self.model.kinds).to(dev)
        if self.model.method == "controlnext":
            module = self.model.module
            self._features = module.features(self.cond.to(next(module.parameters()).dtype))

    def before_step(self, latents: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                    scale: float = 1.0) -> None:
        if self.cond is None or scale == 0.0:  # outside the guidance window: the bare base
            state_of(self.backbone.transformer).clear(self.inner.name)
            return
        B = latents.shape[0]
        rep = (lambda c: c.repeat(B // c.shape[0], *([1] * (c.ndim - 1))) if c.shape[0] != B else c)  # noqa: E731
        m = self.model.method
        if m == "controlnext":  # the handle repeats the per-video features to the batch itself
            self.inner.set_condition(None, timestep, scale, features=self._features)
        elif m == "dit-controlnet":
            self.inner.set_inputs(latents, timestep, encoder_hidden_states, rep(self.cond), scale)
        else:  # concat has no residual to scale: the strength multiplies the condition latents
            keep = {k: v.repeat(B // v.shape[0]) for k, v in self._keep.items()} if self._keep else None
            self.inner.set_condition({k: rep(v) * scale for k, v in self.cond.items()}, keep)


def new_control_model(method: str, backbone, kinds: list[str], finetune: str | None = None, lora_rank: int = 0,
                      **module_kwargs) -> ControlModel:
    """A fresh (untrained) control model for `backbone`. finetune: base-weight regex (default: ControlNeXt trains the
    attention output projections, as the public SD1.5 code; concat fine-tunes everything unless LoRA is used)."""
    view = backbone.view
    kinds = list(kinds)
    stride = backbone.codec.spatial * view.patch_size[1]
    if method == "controlnext":
        module = ControlNeXtDiT(hidden_size=view.hidden_size, in_channels=3 * len(kinds), spatial_stride=stride,
                                temporal_compression=backbone.codec.temporal,
                                **{**scaled_widths(view.hidden_size), **module_kwargs})
        ft = CONTROLNEXT_FINETUNE if finetune is None else finetune
    elif method == "dit-controlnet":
        module = DiTControlNet.from_base(backbone.transformer, in_channels=3 * len(kinds),
                                         spatial_stride=backbone.codec.spatial,
                                         temporal_compression=backbone.codec.temporal, **module_kwargs)
        ft = "" if finetune is None else finetune
    elif method == "concat":
        module = None
        ft = (r"." if not lora_rank else "") if finetune is None else finetune
    else:
        raise CinetuneError(f"unknown control method {method!r}; known: {', '.join(METHODS)}")
    return ControlModel(method, kinds, module, ft, lora_rank=lora_rank)
