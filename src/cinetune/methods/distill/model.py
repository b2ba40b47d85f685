"""A distilled few-step student as one saved model (core.protocol.AdapterModel): its weights as deltas from the
teacher it was distilled from, its student timesteps (DMD2's few-step sampler) and optionally the latent frame
interpolator it samples with (paper Sec. 3.4). Attached to the teacher's backbone it turns it into the student and
removal restores the teacher exactly; other attachments (control, identities) stack on it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from ...core import Handle, apply_trained_state, load_pretrained, load_tensors, read_manifest, save_tensors
from ...core import trained_state, write_adapter_dir
from ...errors import CinetuneError
from .interpolator import LatentInterpolator
from .sampler import few_step_sample, student_sigmas

MANIFEST = "cinetune_distill.json"


def fingerprint(transformer: torch.nn.Module) -> str:
    """A cheap identity of a transformer's weights (names, shapes and the first 16 values of every tensor, exact
    bytes): a student's deltas only make sense on the teacher they were taken from."""
    h = hashlib.sha256()
    for name, p in transformer.named_parameters():
        if "lora_" in name:
            continue
        h.update(f"{name}{tuple(p.shape)}".encode())
        h.update(p.detach().flatten()[:16].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


class FewStepSampler:
    """The student's sampler: `sample(denoise, shape, generator, device, steps, interpolate)` -> clean latents."""

    def __init__(self, timesteps: list[float], shift: float, interpolator: LatentInterpolator | None = None,
                 half_steps: int = 2):
        self.timesteps, self.shift, self.interpolator, self.half_steps = list(timesteps), shift, interpolator, half_steps

    def sigmas(self, steps: int | None = None) -> list[float]:
        """The student's noise levels; fewer steps take an evenly spread subset (the first level always)."""
        K = len(self.timesteps)
        steps = K if steps is None else steps
        if not 1 <= steps <= K:
            raise CinetuneError(f"this student samples with 1 to {K} steps (trained at timesteps "
                                f"{', '.join(f'{t:g}' for t in self.timesteps)}), got {steps}")
        pick = np.round(np.linspace(0, K - 1, steps)).astype(int) if steps > 1 else [0]
        return student_sigmas([self.timesteps[i] for i in pick], self.shift)

    def sample(self, denoise, shape: tuple[int, ...], generator: torch.Generator, device, steps: int | None = None,
               interpolate: bool = False) -> torch.Tensor:
        sigmas = self.sigmas(steps)
        if interpolate and self.interpolator is None:
            raise CinetuneError("this student has no frame interpolator: train one (`cinetune train interpolator`) "
                                "and add it with `cinetune distill add-interpolator`")
        interp = self.interpolator.to(device).eval().interpolate if interpolate else None
        half = min(self.half_steps, len(sigmas) - 1)
        return few_step_sample(denoise, shape, sigmas, generator, device, interpolate=interp if half else None,
                               half_steps=half)


class StudentModel:
    method = "distill"
    attach_first = True  # it checks for and rewrites the teacher's weights (pipelines.adapted)

    def __init__(self, deltas: dict[str, torch.Tensor], timesteps: list[float], shift: float, base: str,
                 base_fingerprint: str, interpolator: LatentInterpolator | None = None, half_steps: int = 2,
                 info: dict | None = None, teacher: str = ""):
        """base: the teacher's backbone (preset or diffusers directory); teacher: the weights it was distilled from
        when they are not the base's own (a transformer directory or shipped name; "" = the base's)."""
        self.deltas, self.timesteps, self.shift = dict(deltas), list(timesteps), float(shift)
        self.base, self.base_fingerprint, self.teacher = base, base_fingerprint, teacher
        self.interpolator, self.half_steps, self.info = interpolator, int(half_steps), dict(info or {})
        self.kinds: list[str] = []  # a student takes no condition videos

    @classmethod
    def from_transformers(cls, teacher_model: torch.nn.Module, student: torch.nn.Module, timesteps: list[float],
                          shift: float, base: str, **kw) -> "StudentModel":
        """Deltas student - teacher of every parameter (two transformers of one architecture)."""
        base_state = {n: p.detach() for n, p in teacher_model.named_parameters()}
        names = [n for n, _ in student.named_parameters()]
        return cls(trained_state(student, names, base_state), timesteps, shift, base, fingerprint(teacher_model), **kw)

    # -- use ------------------------------------------------------------------------------------------------------
    def load_base(self, dtype: torch.dtype | None = None):
        """The teacher's backbone with the teacher's weights (in `dtype`), to attach this student to."""
        from ...backbones import load_backbone
        from ...training.config import init_dir

        backbone = load_backbone(self.base, dtype=dtype)
        if self.teacher and self.teacher != self.base:
            tr = type(backbone.transformer)
            backbone.transformer = load_pretrained(tr, Path(init_dir(self.teacher, "transformer")))
            if dtype not in (None, torch.float32):
                backbone.transformer.to(dtype)
        return backbone

    def sampler(self) -> FewStepSampler:
        return FewStepSampler(self.timesteps, self.shift, self.interpolator, self.half_steps)

    def attach(self, backbone, trainable: bool = False) -> "StudentAttachment":
        return StudentAttachment(self, backbone, trainable)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"interpolator": self.interpolator} if self.interpolator is not None else {}

    def num_parameters(self) -> int:
        return sum(t.numel() for t in self.deltas.values()) + sum(p.numel() for m in self.modules().values()
                                                                  for p in m.parameters())

    # -- files ----------------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        def write(tmp: Path) -> None:
            save_tensors(tmp / "student.safetensors", self.deltas, {"delta": True})
            if self.interpolator is not None:
                self.interpolator.save_pretrained(tmp / "interpolator", safe_serialization=True)
        meta = {"method": self.method, "kinds": [], "timesteps": self.timesteps, "shift": self.shift,
                "base": self.base, "teacher": self.teacher, "base_fingerprint": self.base_fingerprint,
                "half_steps": self.half_steps,
                "info": self.info}
        return write_adapter_dir(path, MANIFEST, meta, write)

    @classmethod
    def load(cls, path: str | Path) -> "StudentModel":
        path, meta = read_manifest(path, MANIFEST, "distilled student")
        need = ("timesteps", "shift", "base", "base_fingerprint")
        if meta.get("method") != cls.method or any(k not in meta for k in need):
            raise CinetuneError(f"{path / MANIFEST}: not a distilled student (needs method 'distill' and "
                                f"{', '.join(need)})")
        deltas = load_tensors(path / "student.safetensors")[0]
        interp = load_pretrained(LatentInterpolator, path / "interpolator") if (path / "interpolator").is_dir() else None
        return cls(deltas, [float(t) for t in meta["timesteps"]], float(meta["shift"]), str(meta["base"]),
                   str(meta["base_fingerprint"]), interp, int(meta.get("half_steps", 2)), meta.get("info", {}),
                   str(meta.get("teacher", "")))


class StudentAttachment(Handle):
    """The student's weights written into the backbone's transformer (teacher + deltas); remove() restores the
    teacher bit-exactly. `sampler` is the few-step sampler the pipelines use while it is attached."""

    def __init__(self, model: StudentModel, backbone, trainable: bool = False):
        super().__init__(name=model.method)
        self.model, self.backbone = model, backbone
        tr = backbone.transformer
        got = fingerprint(tr)
        if got != model.base_fingerprint:
            raise CinetuneError(f"this student was distilled from {model.teacher or model.base} (weights "
                                f"{model.base_fingerprint}); the backbone's transformer is another ({got})")
        self.base = {n: p.detach().clone() for n, p in tr.named_parameters()} if trainable else None
        self.add(apply_trained_state(tr, model.deltas, delta=True))
        self.sampler = model.sampler()
        if trainable:
            flags = {n: p.requires_grad for n, p in tr.named_parameters()}
            tr.requires_grad_(True)
            self.add(lambda: [p.requires_grad_(flags[n]) for n, p in tr.named_parameters() if n in flags])

    def prepare(self, conditions: dict | None, keep: dict | None = None) -> None:
        """A student takes no conditions."""

    def before_step(self, latents, timestep, encoder_hidden_states, scale: float = 1.0) -> None:
        """The student's weights act on every step."""

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for n, p in self.backbone.transformer.named_parameters() if p.requires_grad and "lora_" not in n]

    def collect(self) -> StudentModel:
        """The trained weights as the model's deltas from the teacher (the weights before attaching)."""
        if self.base is None:
            raise CinetuneError("collect() needs an attachment made with trainable=True")
        tr = self.backbone.transformer
        self.model.deltas = trained_state(tr, [n for n, _ in tr.named_parameters() if n in self.base], self.base)
        return self.model
