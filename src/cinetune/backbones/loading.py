"""Build a backbone from a preset name or a local diffusers-format directory. Nothing is downloaded."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..errors import CinetuneError
from .codec import FRAME_STATS, LatentCodec
from .presets import PRESETS, assets_root, BackbonePreset, get_preset, models_dir
from .text import TextEncoder, checkpoint_encoder, minilm_encoder
from .view import VideoDiTView

LAYOUT = ("expected a diffusers-format directory: model_index.json, transformer/, vae/, scheduler/, and either "
          "text_encoder/ + tokenizer/ or cinetune.json naming a built-in text encoder")


@dataclass
class Backbone:
    preset: BackbonePreset
    transformer: torch.nn.Module
    codec: LatentCodec
    text_encoder: TextEncoder
    scheduler: object
    source: str  # where it was loaded from
    execution_device: torch.device | None = None  # where it computes, when offloading keeps its weights elsewhere

    @property
    def view(self) -> VideoDiTView:
        return VideoDiTView(self.transformer, self.preset.family)

    @property
    def device(self) -> torch.device:
        """Where inputs go: the execution device (offloaded weights sit on the CPU between calls), else the weights'."""
        return self.execution_device or next(self.transformer.parameters()).device

    @property
    def vae(self):
        return self.codec.vae

    def to(self, device, dtype: torch.dtype | None = None) -> "Backbone":
        if dtype is None:
            self.transformer.to(device)
        else:
            self.transformer.to(device, dtype=dtype)
        self.codec.to(device)
        self.text_encoder.to(device)
        self.execution_device = torch.device(device)
        return self


def _transformer_cls(family: str):
    from diffusers import CogVideoXTransformer3DModel, WanTransformer3DModel

    return WanTransformer3DModel if family == "wan" else CogVideoXTransformer3DModel


def _vae_from_dir(path: Path):
    from diffusers import AutoencoderKLCogVideoX, AutoencoderKLWan

    cls_name = json.loads((path / "config.json").read_text()).get("_class_name", "AutoencoderKLWan")
    cls = AutoencoderKLCogVideoX if "CogVideoX" in cls_name else AutoencoderKLWan
    return cls.from_pretrained(path, use_safetensors=True)


def toy_scheduler(shift: float):
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)


def toy_codec(preset: BackbonePreset, random_init: bool = False) -> LatentCodec:
    """The shipped toy VAE with its latent statistics (a random VAE with per-channel ones if none is shipped and
    `random_init`)."""
    from diffusers import AutoencoderKLWan

    path = assets_root() / "toy-vae" / "vae"
    if (path / "config.json").is_file():
        return LatentCodec.from_dir(AutoencoderKLWan.from_pretrained(path, use_safetensors=True), path)
    if random_init:
        warnings.warn(f"no trained toy VAE at {path}: using a random one (fine for tests, useless for real training; "
                      "train it with `cinetune train base --preset toy-vae`)", stacklevel=2)
        return LatentCodec(AutoencoderKLWan(**preset.vae))
    raise CinetuneError(f"shipped toy VAE missing at {path}; train it with `cinetune train base --preset toy-vae`")


def _load_toy(preset: BackbonePreset, random_init: bool, weights: bool = True,
              dtype: torch.dtype = torch.float32) -> Backbone:
    cls = _transformer_cls(preset.family)
    wdir = assets_root() / preset.asset / "transformer" if preset.asset else None
    if weights and wdir is not None and (wdir / "config.json").is_file():
        transformer = cls.from_pretrained(wdir, use_safetensors=True, torch_dtype=dtype)
    elif random_init or not weights:
        transformer = cls(**preset.transformer)
        if dtype != torch.float32:  # (diffusers warns on any .to(dtype) of a model with fp32 modules)
            transformer.to(dtype)
    else:
        raise CinetuneError(f"no shipped weights for {preset.name} at {wdir}; {_how_to_train(preset.name)}")
    return Backbone(preset, transformer, toy_codec(preset, random_init), minilm_encoder(preset.max_text_len),
                    toy_scheduler(preset.flow_shift), source=preset.name)


def _how_to_train(name: str) -> str:
    """The commands that make a toy backbone's weights: its own training preset, or (an architecture shipped for tests
    only, like toy-cogvideox) toy-large's recipe on that architecture, installed under the preset's asset name."""
    from ..training.config import PRESETS as TRAINING

    if name in TRAINING:
        return f"train them with `cinetune train base --preset {name}`"
    return (f"train them with `cinetune train base --preset toy-large --backbone {name} output_dir=runs/{name}` and "
            f"install the run with `cinetune export-asset --run runs/{name} --name {name}`")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CinetuneError(f"cannot read {path}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise CinetuneError(f"{path}: expected a JSON object")
    return data


def _check_dir(root: Path) -> dict:
    if not root.is_dir():
        raise CinetuneError(f"model directory not found: {root}; {LAYOUT}")
    missing = [d for d in ("transformer", "vae", "scheduler") if not (root / d / "config.json").is_file()
               and not (root / d / "scheduler_config.json").is_file()]
    extra = _read_json(root / "cinetune.json") if (root / "cinetune.json").is_file() else {}
    if "text_encoder" not in extra and not ((root / "text_encoder").is_dir() and (root / "tokenizer").is_dir()):
        missing.append("text_encoder/ + tokenizer/")
    if missing:
        raise CinetuneError(f"model directory {root} is incomplete (missing {', '.join(missing)}); {LAYOUT}")
    return extra


def _directory_preset(root: Path, family: str, tcfg: dict, scfg: dict) -> BackbonePreset:
    """Defaults of a directory that is no known preset, read from the checkpoint where it says them: CogVideoX's
    transformer config holds its sample size (latent units, VAE 8x spatially) and 1.5's temporal patch (16 fps, 1.0: 8
    fps); Wan's does not, so its release defaults (81 x 480 x 832 at 16 fps) with the scheduler's own flow shift."""
    common = dict(name=root.name, family=family, description=f"local directory {root}")
    if family == "cogvideox":
        return BackbonePreset(**common, frames=int(tcfg.get("sample_frames", 49)),
                              height=8 * int(tcfg.get("sample_height", 60)), width=8 * int(tcfg.get("sample_width", 90)),
                              fps=16 if tcfg.get("patch_size_t") else 8, flow_shift=0.0,
                              max_text_len=int(tcfg.get("max_text_seq_length", 226)))
    shift = scfg.get("flow_shift") or scfg.get("shift") or 3.0
    return BackbonePreset(**common, frames=81, height=480, width=832, fps=16, flow_shift=float(shift), max_text_len=512)


def load_directory(root: str | Path, preset: BackbonePreset | None = None, dtype: torch.dtype | None = None
                   ) -> Backbone:
    """Load a diffusers-format pipeline directory (WanPipeline / CogVideoXPipeline layout, or one written by
    `save_backbone`)."""
    import diffusers

    root = Path(root).expanduser()
    extra = _check_dir(root)
    tcfg = _read_json(root / "transformer" / "config.json")
    scfg = _read_json(root / "scheduler" / "scheduler_config.json")
    family = "cogvideox" if "CogVideoX" in tcfg.get("_class_name", "") else "wan"
    if preset is None:
        preset = _directory_preset(root, family, tcfg, scfg)
    if "preset" in extra:
        preset = replace(preset, **{k: v for k, v in extra["preset"].items() if k in ("frames", "height", "width",
                                                                                        "fps", "flow_shift", "max_text_len")})
    try:
        # loaded in `dtype` by diffusers itself, which keeps the model's fp32 modules (Wan's norms, time embedder)
        transformer = _transformer_cls(family).from_pretrained(root / "transformer", use_safetensors=True,
                                                               **({"torch_dtype": dtype} if dtype else {}))
        vae = _vae_from_dir(root / "vae")
        scheduler = getattr(diffusers, scfg["_class_name"]).from_pretrained(root / "scheduler")
        if extra.get("text_encoder") == "minilm":
            text = minilm_encoder(preset.max_text_len)
        else:
            text = checkpoint_encoder(root, preset.max_text_len, zero_padding=family == "wan", dtype=dtype)
    except CinetuneError:
        raise
    except (OSError, ValueError, KeyError, AttributeError) as e:  # JSONDecodeError is a ValueError
        raise CinetuneError(f"cannot load model directory {root}: {str(e).splitlines()[0]}") from None
    return Backbone(preset, transformer, LatentCodec.from_dir(vae, root / "vae"), text, scheduler, source=str(root))


def load_backbone(model: str, random_init: bool = False, weights: bool = True, dtype: torch.dtype | None = None
                  ) -> Backbone:
    """`model`: a preset name (toy presets load shipped weights; real presets look in the models directory) or a
    path to a diffusers-format directory. `random_init` builds untrained toy models (for training from scratch);
    `weights=False` builds a toy transformer from its config only, for a caller that loads its own weights into it
    (the VAE and text encoder load as usual). `dtype`: the transformer's (and a checkpoint's text encoder's) load dtype."""
    p = Path(model).expanduser()
    if model not in PRESETS and (p.exists() or "/" in model or model.startswith(".")):
        return load_directory(p, dtype=dtype)
    preset = get_preset(model)
    if preset.is_toy:
        return _load_toy(preset, random_init, weights, dtype or torch.float32)
    root = models_dir() / preset.dirname
    if not root.is_dir():
        raise CinetuneError(f"{preset.name}: put the diffusers-format checkpoint at {root} (set CINETUNE_MODELS_DIR) "
                            f"or pass --model PATH; {LAYOUT}")
    return load_directory(root, preset, dtype)


def save_backbone(backbone: Backbone, out: str | Path) -> Path:
    """Write a loadable diffusers-format directory (toy text encoder recorded in cinetune.json)."""
    from ..io import atomic_dir, write_json

    out = Path(out)
    with atomic_dir(out) as tmp:
        backbone.transformer.save_pretrained(tmp / "transformer", safe_serialization=True)
        backbone.vae.save_pretrained(tmp / "vae", safe_serialization=True)
        if backbone.codec.per_frame:
            write_json(tmp / "vae" / FRAME_STATS, backbone.codec.frame_stats())
        backbone.scheduler.save_pretrained(tmp / "scheduler")
        cls = "WanPipeline" if backbone.preset.family == "wan" else "CogVideoXPipeline"
        write_json(tmp / "model_index.json", {"_class_name": cls, "_diffusers_version": "0.42.1"})
        p = backbone.preset
        write_json(tmp / "cinetune.json", {"text_encoder": "minilm", "preset": {
            "frames": p.frames, "height": p.height, "width": p.width, "fps": p.fps, "flow_shift": p.flow_shift,
            "max_text_len": p.max_text_len}})
    return out
