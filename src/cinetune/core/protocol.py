"""What every method's saved model and attachment provide (docs/design.md, "Methods"). The pipelines, the trainer,
the CLI and the contract tests use methods only through these two protocols and the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Attachment(Protocol):
    """A model attached to one backbone. `prepare` once per video (or training batch), `before_step` before each
    denoiser call, `remove` undoes the attachment exactly."""

    name: str

    def prepare(self, conditions: dict | None, keep: dict[str, torch.Tensor] | None = None) -> None: ...

    def before_step(self, latents: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                    scale: float = 1.0) -> None: ...

    def trainable_parameters(self) -> list[torch.nn.Parameter]: ...

    def remove(self) -> None: ...


@runtime_checkable
class AdapterModel(Protocol):
    """A method's trainable state, independent of any backbone instance; saved as a directory whose manifest names
    the method."""

    method: str
    kinds: list[str]
    info: dict

    def attach(self, backbone, trainable: bool = False) -> Attachment: ...

    def modules(self) -> dict[str, torch.nn.Module]: ...

    def save(self, path: str | Path) -> Path: ...

    @classmethod
    def load(cls, path: str | Path) -> "AdapterModel": ...

    def num_parameters(self) -> int: ...


class AttachedDenoiser(torch.nn.Module):
    """The backbone's transformer with one attachment, as one module holding every trainable parameter (what
    accelerate / DDP wrap): forward prepares the conditions, sets this call's state and runs the backbone."""

    def __init__(self, backbone, attachment: Attachment, modules: dict[str, torch.nn.Module]):
        super().__init__()
        self.transformer = backbone.transformer
        for name, m in modules.items():
            self.add_module(name, m)
        self.view, self.att = backbone.view, attachment

    def forward(self, xt: torch.Tensor, t: torch.Tensor, emb: torch.Tensor, cond, keep=None) -> torch.Tensor:
        self.att.prepare(cond, keep)
        self.att.before_step(xt, t, emb, 1.0)
        return self.view(xt, t, emb, module=self.transformer)
