"""Load the shipped toy feature networks (or a trained run's export) from safetensors."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ..errors import CinetuneError

ASSET_DIRS = {"video_encoder": "toy-video-encoder", "identity_encoder": "toy-identity-encoder",
              "annotator": "toy-annotator"}


def _classes():
    from .annotator import ToyAnnotator
    from .identity_encoder import ToyIdentityEncoder
    from .video_encoder import ToyVideoEncoder

    return {"video_encoder": ToyVideoEncoder, "identity_encoder": ToyIdentityEncoder, "annotator": ToyAnnotator}


@lru_cache(maxsize=8)
def load_toy_net(kind: str, path: str | None = None):
    """kind: video_encoder | identity_encoder | annotator. path: a directory written by save_pretrained (default:
    the shipped asset). Returned in eval mode, frozen; cached per (kind, path)."""
    from ..backbones.presets import assets_root

    if kind not in ASSET_DIRS:
        raise CinetuneError(f"unknown toy network {kind!r}; known: {', '.join(ASSET_DIRS)}")
    folder = Path(path) if path else assets_root() / ASSET_DIRS[kind] / kind
    if not (folder / "config.json").is_file():
        raise CinetuneError(f"toy network {kind}: no config.json under {folder} (train it with `cinetune train "
                            f"features --preset toy-{kind.replace('_', '-')}` and export it)")
    try:
        net = _classes()[kind].from_pretrained(folder, use_safetensors=True)
    except ValueError as e:  # shapes that do not fit today's vocabulary: weights of an older toy world
        raise CinetuneError(f"toy network {kind} at {folder} does not fit this version's toy world "
                            f"({str(e).splitlines()[0][:120]}); rebuild it with `cinetune assets`") from None
    return net.eval().requires_grad_(False)
