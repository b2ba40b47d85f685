"""Real checkpoints (needs $CINETUNE_MODELS_DIR with diffusers-format Wan2.1 / CogVideoX folders; run with -m slow)."""

import pytest
import torch

from cinetune.backbones import PRESETS, models_dir

pytestmark = pytest.mark.slow
REAL = [name for name, p in PRESETS.items() if not p.is_toy]


@pytest.mark.parametrize("name", REAL)
def test_real_checkpoint_generates(name):
    if not (models_dir() / PRESETS[name].dirname).is_dir():
        pytest.skip(f"{name} not found under {models_dir()}")
    import cinetune

    device = "cuda" if torch.cuda.is_available() else "cpu"
    pipe = cinetune.load_pipeline(name, device=device, dtype=torch.bfloat16 if device == "cuda" else None)
    out = pipe("a cat walks on the grass", frames=9, height=256, width=256, steps=4, progress=False)
    assert out.videos.shape == (1, 9, 256, 256, 3)
