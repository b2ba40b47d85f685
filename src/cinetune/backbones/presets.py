"""Backbone preset registry: toy Wan-architecture models (shipped) and real checkpoints (local directories)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CinetuneError

PACKAGE_ASSETS = Path(__file__).resolve().parent.parent / "assets"


def assets_root() -> Path:
    """Where shipped models are looked up: the package's assets, or $CINETUNE_ASSETS (a rebuild in progress:
    `cinetune assets` trains every stage against its own staging folder, so no stage reads a half-replaced set)."""
    env = os.environ.get("CINETUNE_ASSETS")
    return Path(env).expanduser() if env else PACKAGE_ASSETS


def find_saved(path: str | Path, subdir: str | None, marker: str) -> Path | None:
    """A saved directory named by its path, or by a shipped asset's name (<assets>/<name>/<subdir>): the first of the
    two that holds the file `marker`; None when neither does."""
    for d in (Path(path), assets_root() / str(path) / subdir if subdir else None):
        if d is not None and (d / marker).is_file():
            return d
    return None

# Toy VAE: Wan's causal 3D VAE with 4x temporal / 4x spatial compression (Wan2.1's is 4x / 8x): 64x64 toy
# frames then give a 16x16 latent grid, fine enough for the DiT to place shapes, at Wan's 16 latent channels.
# is_residual (Wan2.2's average-down / duplicate-up shortcuts): measured 1.8x lower loss after 40 steps than the
# plain Wan2.1 blocks, which at this size spend hundreds of steps reconstructing grey luminance only.
TOY_VAE = dict(base_dim=16, z_dim=16, dim_mult=[1, 2, 2], num_res_blocks=1, temperal_downsample=[True, True],
               is_residual=True, scale_factor_temporal=4, scale_factor_spatial=4)


def _toy_wan(heads: int, layers: int, ffn: int) -> dict:
    return dict(patch_size=(1, 2, 2), num_attention_heads=heads, attention_head_dim=64, in_channels=16,
                out_channels=16, text_dim=384, freq_dim=256, ffn_dim=ffn, num_layers=layers, cross_attn_norm=True,
                qk_norm="rms_norm_across_heads", rope_max_seq_len=64)


@dataclass(frozen=True)
class BackbonePreset:
    """How to build or find a backbone. Toy presets carry configs; real ones name a local directory."""

    name: str
    family: str  # "wan" | "cogvideox"
    description: str
    transformer: dict | None = None  # toy: WanTransformer3DModel / CogVideoXTransformer3DModel config
    vae: dict | None = None
    text_encoder: str = "checkpoint"  # "minilm" (toy) or "checkpoint" (the directory's own T5 / UMT5)
    asset: str | None = None  # shipped weights under assets/<asset>/
    dirname: str | None = None  # real: expected folder name under the models directory
    frames: int = 17
    height: int = 64
    width: int = 64
    fps: int = 8
    flow_shift: float = 2.0
    max_text_len: int = 64  # toy captions run to 63 MiniLM tokens (at 32, 46% were cut)
    extra: dict = field(default_factory=dict)

    @property
    def is_toy(self) -> bool:
        return self.transformer is not None


PRESETS: dict[str, BackbonePreset] = {}


def _register(p: BackbonePreset) -> None:
    PRESETS[p.name] = p


_register(BackbonePreset("toy-small", "wan", "Wan-architecture DiT, 4 blocks x 128 wide (the small model)",
                         transformer=_toy_wan(2, 4, 512), vae=TOY_VAE, text_encoder="minilm", asset="toy-small"))
_register(BackbonePreset("toy-large", "wan", "Wan-architecture DiT, 8 blocks x 256 wide (the large model, ~8x compute)",
                         transformer=_toy_wan(4, 8, 1024), vae=TOY_VAE, text_encoder="minilm", asset="toy-large"))
_register(BackbonePreset(
    "toy-cogvideox", "cogvideox", "CogVideoX-architecture DiT on the toy VAE's latents (random init; for tests)",
    transformer=dict(num_attention_heads=2, attention_head_dim=64, in_channels=16, out_channels=16, time_embed_dim=128,
                     text_embed_dim=384, num_layers=4, sample_width=16, sample_height=16, sample_frames=17,
                     patch_size=2, temporal_compression_ratio=4, max_text_seq_length=32),
    vae=TOY_VAE, text_encoder="minilm", asset="toy-cogvideox", max_text_len=32))
for _name, _dir, _fam, _f, _h, _w, _shift, _len in [
    ("wan2.1-t2v-1.3b", "Wan2.1-T2V-1.3B-Diffusers", "wan", 81, 480, 832, 3.0, 512),
    ("wan2.1-t2v-14b", "Wan2.1-T2V-14B-Diffusers", "wan", 81, 480, 832, 5.0, 512),
    ("cogvideox-2b", "CogVideoX-2b", "cogvideox", 49, 480, 720, 0.0, 226),
    ("cogvideox-5b", "CogVideoX-5b", "cogvideox", 49, 480, 720, 0.0, 226),
]:
    _register(BackbonePreset(_name, _fam, f"{_dir} in diffusers format (local directory)", dirname=_dir, frames=_f,
                             height=_h, width=_w, fps=16 if _fam == "wan" else 8, flow_shift=_shift, max_text_len=_len))


def models_dir() -> Path:
    """Where real checkpoints are looked up by preset name ($CINETUNE_MODELS_DIR, default ~/models)."""
    return Path(os.environ.get("CINETUNE_MODELS_DIR", Path.home() / "models")).expanduser()


def get_preset(name: str) -> BackbonePreset:
    if name not in PRESETS:
        raise CinetuneError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)} (or pass a directory path)")
    return PRESETS[name]
