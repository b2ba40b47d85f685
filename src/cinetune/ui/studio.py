"""The UI's engine, free of any web framework: one model loaded once, adapters loaded on first use and kept, and a
request that combines text-to-video, control, identities and the few-step student turned into one generation and
into the `cinetune generate` command that reproduces it byte for byte."""

from __future__ import annotations

import shlex
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CinetuneError

NONE = "none"  # the dropdowns' "no adapter of this kind"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass
class ConditionWindow:
    """One condition's strength and the fraction of the steps it acts on (`--control-scale/start/end KIND=V`)."""

    scale: float = 1.0
    start: float = 0.0
    end: float = 1.0


@dataclass
class Request:
    """Everything one click generates. Paths are files on the server (uploads are copied next to the output)."""

    prompt: str
    negative_prompt: str = ""
    steps: int = 30
    guidance: float = 5.0
    scheduler: str | None = None  # one of pipelines.schedulers.SCHEDULERS (None: the model's own)
    seed: int = 0
    frames: int | None = None
    height: int | None = None
    width: int | None = None
    adapter: str = NONE  # a control adapter: shipped name or saved directory
    control_videos: dict[str, str] = field(default_factory=dict)  # kind -> condition video
    control_from: str | None = None  # a reference video to extract `kinds` from
    kinds: list[str] = field(default_factory=list)
    backend: str = "auto"
    windows: dict[str, ConditionWindow] = field(default_factory=dict)  # kind -> window (absent: the defaults)
    identities: str = NONE  # an Ingredients model
    identity_images: list[str] = field(default_factory=list)  # one reference photo (or video) per person
    student: str = NONE  # a distilled student of the loaded model
    interpolate: bool = False
    compare_base: bool = False  # also generate without any adapter (same seed) for the grid


@dataclass
class Result:
    video: Path  # the generated video (what `command` writes)
    grid: Path  # inputs | [base] | result, side by side
    seconds: float  # wall time of the generation, from prompt to written file
    command: str  # the equivalent `cinetune generate` command line
    faces: list[np.ndarray]  # the aligned reference crops (H, W, 3) uint8, one per identity
    columns: list[str]  # what the grid's columns show


def shipped_adapters(model: str) -> dict[str, list[str]]:
    """The shipped adapters made for `model`, by role: control (adapters taking conditions), identities
    (Ingredients), student (distilled students)."""
    from ..backbones.presets import assets_root
    from ..core import find_manifest, read_manifest
    from ..methods.registry import methods

    manifests = [m.manifest for m in methods().values()]
    out: dict[str, list[str]] = {"control": [], "identities": [], "student": []}
    root = assets_root()
    for d in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        found = find_manifest(d, manifests)
        if found is None:
            continue
        meta = read_manifest(found[0], found[1], "saved adapter")[1]
        info = meta.get("info", {})
        if model not in (meta.get("base"), info.get("backbone"), info.get("large")):
            continue
        role = {"distill": "student", "ingredients": "identities"}.get(meta.get("method"), "control")
        if role != "control" or meta.get("kinds"):
            out[role].append(d.name)
    return out


class Studio:
    """`Studio("toy-large").generate(Request(prompt=...))`: one loaded pipeline reused across requests; every
    result is written under `out` (one numbered folder per request, with copies of the inputs it used)."""

    def __init__(self, model: str = "toy-large", device: str | None = None, out: str | Path | None = None,
                 memory=None):
        import tempfile

        from ..backbones.memory import MemoryOptions
        from ..pipelines import TextToVideoPipeline

        self.model, self.device = model, device
        self.memory = memory or MemoryOptions()
        self.out = Path(out) if out else Path(tempfile.mkdtemp(prefix="cinetune-ui-"))
        self.out.mkdir(parents=True, exist_ok=True)
        self._adapters: dict[str, object] = {}
        self._extracted: dict[tuple, np.ndarray] = {}
        self.fixed_student = self._student_model()
        if self.fixed_student is not None:  # --model names a student: its teacher is the base, the student always on
            import torch

            dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
            self.pipe = TextToVideoPipeline(self.fixed_student.load_base(self.memory.torch_dtype), dev, self.memory)
        else:
            self.pipe = TextToVideoPipeline.from_pretrained(model, device, memory=self.memory)
        self.preset = self.pipe.backbone.preset
        self.fps = self.preset.fps
        self.choices = shipped_adapters(self.fixed_student.base if self.fixed_student else model)
        self._count = 0

    def _student_model(self):
        from ..core import find_manifest
        from ..methods.registry import load_adapter, methods

        if find_manifest(self.model, [methods()["distill"].manifest]) is None:
            return None
        return load_adapter(self.model)

    # -- pieces the panels show before generating ----------------------------------------------------------------
    def adapter(self, name: str):
        """A saved adapter by shipped name or directory, loaded once."""
        from ..methods.registry import load_adapter

        if name not in self._adapters:
            self._adapters[name] = load_adapter(name)
        return self._adapters[name]

    def kinds_of(self, adapter: str) -> list[str]:
        return [] if adapter in (NONE, "") else list(self.adapter(adapter).kinds)

    def extract(self, video: str, kinds: list[str], backend: str = "auto") -> dict[str, np.ndarray]:
        """{kind: condition video (F, H, W, 3) uint8} of a reference video; each (file, kind, backend) once."""
        from ..conditions import get_extractor
        from ..io import read_video

        if not kinds:
            raise CinetuneError("pick the conditions to extract")
        stamp = Path(video).stat().st_mtime_ns if Path(video).is_file() else 0
        keys = {kind: (str(video), stamp, kind, backend) for kind in kinds}
        todo = [k for k, key in keys.items() if key not in self._extracted]
        if todo:
            frames = read_video(video)[0]  # read once for every kind not cached yet
            for kind in todo:
                self._extracted[keys[kind]] = get_extractor(kind, backend=backend)(frames, progress=True)
        return {kind: self._extracted[key] for kind, key in keys.items()}

    def faces(self, identities: str, images: list[str]) -> list[np.ndarray]:
        """The detected, aligned face of each reference image, as (crop, crop, 3) uint8."""
        if identities in (NONE, ""):
            raise CinetuneError("pick an identities model first")
        return _pictures(self.adapter(identities).faces(self._images(images)))

    @staticmethod
    def _images(paths: list[str]) -> list[np.ndarray]:
        from ..io import read_video

        return [read_video(p)[0][0] for p in paths]

    # -- one click -----------------------------------------------------------------------------------------------
    def generate(self, req: Request) -> Result:
        """Generate what `req` asks for and write it; bad input is a CinetuneError naming the field."""
        from ..io import write_video

        t0 = time.perf_counter()
        self._check(req)
        run = self._next_run()
        req = self._copy_inputs(req, run / "inputs")
        models = self._models(req)
        student = next((m for m in models if hasattr(m, "load_base")), None)
        controls = self._controls(req)
        conditioned = [m for m in models if m.kinds]
        if conditioned and not controls:
            raise CinetuneError("the control adapter needs conditions: upload condition videos or a reference video "
                                "to extract " + ", ".join(conditioned[0].kinds) + " from")
        if controls and not conditioned:
            raise CinetuneError("conditions were given but no control adapter is picked")
        if req.interpolate and student is None:
            raise CinetuneError("frame interpolation needs the few-step student")
        kw = dict(negative_prompt=req.negative_prompt, frames=req.frames, height=req.height, width=req.width,
                  steps=None if student else req.steps, guidance=1.0 if student else req.guidance, seed=req.seed,
                  scheduler=None if student else req.scheduler)
        # aligned once: the pipeline takes the crops, the page shows them
        crops = self.adapter(req.identities).faces(self._images(req.identity_images)) if req.identity_images else None
        if models:
            from ..pipelines import AdaptedPipeline

            res = AdaptedPipeline(self.pipe, models)(req.prompt, controls=controls, interpolate=req.interpolate,
                                                     identities=crops, **self._windows(req, controls), **kw)
        else:
            res = self.pipe(req.prompt, **kw)
        video = write_video(run / "video.mp4", res.videos[0], self.fps)
        faces = _pictures(crops) if crops is not None else []
        columns, cols = self._inputs_columns(controls, faces, res.videos[0])
        if req.compare_base and models:
            base_kw = {**kw, "steps": req.steps, "guidance": req.guidance, "scheduler": req.scheduler}
            cols.append(self.pipe(req.prompt, **base_kw).videos[0])
            columns.append("base, no adapters")
        columns.append("result")
        grid = write_video(run / "grid.mp4", np.concatenate([*cols, res.videos[0]], 2), self.fps)
        return Result(video, grid, time.perf_counter() - t0, shlex.join(self.command(req, video)), faces, columns)

    def _check(self, req: Request) -> None:
        import math

        if not req.prompt or not req.prompt.strip():
            raise CinetuneError("the prompt is empty")
        for name in ("steps", "frames", "height", "width"):
            v = getattr(req, name)
            if v is not None and (int(v) != v or v <= 0):
                raise CinetuneError(f"{name} must be a positive whole number, got {v}")
        if not math.isfinite(req.guidance):
            raise CinetuneError(f"guidance must be a finite number, got {req.guidance}")
        if not 0 <= req.seed < 2**63 or int(req.seed) != req.seed:
            raise CinetuneError(f"seed must be a whole number in 0..2^63-1, got {req.seed}")
        if req.control_from and not req.kinds:
            raise CinetuneError("a reference video needs the conditions to extract from it")
        if req.identity_images and req.identities in (NONE, ""):
            raise CinetuneError("reference faces need an identities model")
        if req.identities not in (NONE, "") and not req.identity_images:
            raise CinetuneError("the identities model needs reference face images (1 to 3)")
        p = self.preset
        self.pipe.check_size(req.frames or p.frames, req.height or p.height, req.width or p.width)

    def _next_run(self) -> Path:
        self._count += 1
        while (self.out / f"{self._count:04d}").exists():  # a reused --out keeps what earlier sessions wrote
            self._count += 1
        run = self.out / f"{self._count:04d}"
        run.mkdir(parents=True)
        return run

    @staticmethod
    def _copy_inputs(req: Request, folder: Path) -> Request:
        """The request with its files copied into `folder` (uploads live in the web framework's temporary folder,
        which it cleans): the shown command keeps working."""
        import dataclasses

        def keep(path: str, name: str) -> str:
            src = Path(path)
            if not src.is_file():
                raise CinetuneError(f"{name}: file not found: {path}")
            folder.mkdir(parents=True, exist_ok=True)
            dst = folder / f"{name}{src.suffix.lower()}"
            shutil.copyfile(src, dst)
            return str(dst)

        return dataclasses.replace(
            req, control_videos={k: keep(v, k) for k, v in req.control_videos.items()},
            control_from=keep(req.control_from, "reference") if req.control_from else None,
            identity_images=[keep(p, f"face-{i}") for i, p in enumerate(req.identity_images)])

    def _models(self, req: Request) -> list:
        """In the command's order: the student, the control adapter, the identities model."""
        if req.student not in (NONE, "") and self.fixed_student is None:
            student = self.adapter(req.student)
            if not hasattr(student, "load_base") or student.base != self.model or (
                    student.teacher and student.teacher != student.base):
                raise CinetuneError(f"{req.student} is not a distilled student of {self.model} (start the UI with "
                                    f"--model {req.student} for a student of another base)")
        names = [req.student if self.fixed_student is None else NONE, req.adapter, req.identities]
        models = [self.adapter(n) for n in names if n not in (NONE, "")]
        if req.identities not in (NONE, "") and not hasattr(models[-1], "references"):
            raise CinetuneError(f"{req.identities} is not an Ingredients model")
        return ([self.fixed_student] if self.fixed_student is not None else []) + models

    def _controls(self, req: Request) -> dict[str, np.ndarray]:
        from ..conditions import KINDS
        from ..io import read_video

        out = {}
        for kind, path in req.control_videos.items():
            if kind not in KINDS:
                raise CinetuneError(f"unknown condition {kind!r}; known: {', '.join(KINDS)}")
            out[kind] = read_video(path)[0]
        if req.control_from:
            out.update(self.extract(req.control_from, req.kinds, req.backend))
        return out

    @staticmethod
    def _windows(req: Request, controls: dict) -> dict:
        """control_scale / _start / _end as the CLI parses the command's flags (one code path, one meaning)."""
        from ..cli import _per_condition

        return {f"control_{part}": _per_condition(_window_flags(req, part, controls), default, f"control_{part}",
                                                  controls)
                for part, default in (("scale", 1.0), ("start", 0.0), ("end", 1.0))}

    def _inputs_columns(self, controls: dict, faces: list[np.ndarray], result: np.ndarray
                        ) -> tuple[list[str], list[np.ndarray]]:
        """The grid's input columns at the result's size: each condition, then the reference faces on white."""
        import cv2

        from ..pipelines.adapted import fit_condition

        F, H, W, _ = result.shape
        names, cols = [], []
        for kind, v in controls.items():
            names.append(kind)
            cols.append(fit_condition(v, F, H, W, kind, f"{kind} condition"))
        if faces:
            side = min(H, W // len(faces))
            strip = np.full((H, W, 3), 255, np.uint8)
            for i, f in enumerate(faces):
                strip[(H - side) // 2:(H - side) // 2 + side, i * side:(i + 1) * side] = cv2.resize(f, (side, side))
            names.append("reference faces")
            cols.append(np.repeat(strip[None], F, 0))
        return names, cols

    # -- reproduction --------------------------------------------------------------------------------------------
    def command(self, req: Request, out: str | Path) -> list[str]:
        """The `cinetune generate` argv that writes the same file as `generate(req)` (seeded, byte-identical)."""
        student = self.fixed_student is not None or req.student not in (NONE, "")
        argv = ["cinetune", "generate", "--model", self.model, "--prompt", req.prompt]
        if req.negative_prompt:
            argv += ["--negative-prompt", req.negative_prompt]
        for name in ("frames", "height", "width"):
            if getattr(req, name) is not None:
                argv += [f"--{name}", str(getattr(req, name))]
        if not student:  # a student samples in its own steps without guidance, as generate's defaults say
            argv += ["--steps", str(req.steps), "--guidance", _num(req.guidance)]
            argv += ["--scheduler", req.scheduler] if req.scheduler else []
        argv += ["--seed", str(req.seed)]
        for name in (req.student if self.fixed_student is None else NONE, req.adapter):
            if name not in (NONE, ""):
                argv += ["--adapter", name]
        if req.interpolate:
            argv.append("--interpolate")
        for kind, path in req.control_videos.items():
            argv += ["--control", f"{kind}={path}"]
        if req.control_from:
            argv += ["--control-from", req.control_from, "--kinds", ",".join(req.kinds)]
            if req.backend != "auto":
                argv += ["--backend", req.backend]
        kinds = [*req.control_videos, *(req.kinds if req.control_from else [])]
        for part in ("scale", "start", "end"):
            for spec in _window_flags(req, part, dict.fromkeys(kinds)):
                argv += [f"--control-{part}", spec]
        if req.identities not in (NONE, ""):
            argv += ["--identities", req.identities]
            for p in req.identity_images:
                argv += ["--identity", p]
        return argv + self._memory_flags() + ["--out", str(out)]

    def _memory_flags(self) -> list[str]:
        m, argv = self.memory, []
        if self.device:
            argv += ["--device", self.device]
        if m.dtype != "fp32":
            argv += ["--dtype", m.dtype]
        if m.offload != "none":
            argv += ["--offload", m.offload]
        for flag in ("fp8", "vae_tiling", "vae_slicing", "release_text_encoder"):
            if getattr(m, flag):
                argv.append("--" + flag.replace("_", "-"))
        return argv


def _pictures(faces) -> list[np.ndarray]:
    """Aligned faces (K, 3, crop, crop) in [-1, 1] -> K images (crop, crop, 3) uint8."""
    return [np.ascontiguousarray(((f.permute(1, 2, 0).cpu().numpy() + 1) * 127.5).round().clip(0, 255)
                                 .astype(np.uint8)) for f in faces]


def _window_flags(req: Request, part: str, controls: dict) -> list[str]:
    """The --control-PART values for the given conditions whose window differs from the default."""
    default = getattr(ConditionWindow(), part)
    return [f"{k}={_num(getattr(w, part))}" for k, w in req.windows.items()
            if k in controls and getattr(w, part) != default]


def _num(v: float) -> str:
    return repr(float(v)) if float(v) != int(v) else str(int(v))
