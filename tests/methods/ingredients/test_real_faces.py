"""The real-photo facial extractor: dlib finds and aligns the face in a real photo (scikit-image's astronaut), its
128-d embedding and a local CLIP's hidden states are the local embedding; an Ingredients model built on it trains on
toy clips, saves, loads (its encoder rebuilt from the manifest) and generates from the photo through the CLI."""

from __future__ import annotations

import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import torch

pytest.importorskip("dlib", reason="optional extra: pip install 'cinetune[faces]'")
skdata = pytest.importorskip("skimage.data", reason="scikit-image supplies the real test photo")

from cinetune.errors import CinetuneError  # noqa: E402
from cinetune.io import read_video  # noqa: E402
from cinetune.methods.ingredients.model import IngredientsModel  # noqa: E402
from cinetune.methods.ingredients.real_faces import DlibClipFaceEncoder, make_encoder  # noqa: E402


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    d = tmp_path_factory.mktemp("clip")
    torch.manual_seed(0)
    CLIPVisionModel(CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     image_size=32, patch_size=8)).save_pretrained(d, safe_serialization=True)
    return d


def test_a_real_photo_is_aligned_and_encoded(clip_dir):
    enc = DlibClipFaceEncoder(clip_dir, layers=(1, -1))
    photo = skdata.astronaut()
    chips = enc.align([photo, np.ascontiguousarray(photo[:, ::-1])])
    assert chips.shape == (2, 3, 150, 150) and chips.min() >= -1 and chips.max() <= 1
    ident, scales = enc(chips)
    assert ident.shape == (2, 128) and torch.allclose(ident.norm(dim=-1), torch.ones(2))
    assert float(ident[0] @ ident[1]) > 0.95  # the same person, mirrored
    assert [tuple(s.shape) for s in scales] == [(2, 1 + 4 * 4, 16)] * 2  # CLS + (32 / 8)^2 patches per layer
    assert make_encoder(enc.spec()).spec() == enc.spec()
    with pytest.raises(CinetuneError, match="no face"):
        enc.align([np.full((96, 96, 3), 128, np.uint8)])
    with pytest.raises(CinetuneError, match="hidden states"):
        DlibClipFaceEncoder(clip_dir, layers=(7,))
    with pytest.raises(CinetuneError, match="not a local CLIP"):
        DlibClipFaceEncoder(clip_dir / "missing")


def run(*args):
    return subprocess.run([sys.executable, "-m", "cinetune.cli", *args], capture_output=True, text=True, timeout=900)


def test_an_ingredients_model_on_the_real_encoder_trains_and_generates_from_a_photo(clip_dir, tmp_path):
    r = run("train", "ingredients", "--preset", "tiny-ingredients", "ingredients.encoder=dlib-clip",
            f"ingredients.clip={clip_dir}", "ingredients.clip_layers=1,-1", f"output_dir={tmp_path / 's1'}",
            f"data.cache_path={tmp_path / 'cache.safetensors'}", "steps=2")
    assert r.returncode == 0, r.stderr[-2000:]
    model = IngredientsModel.load(tmp_path / "s1" / "final" / "ingredients")
    assert model.encoder_spec == {"kind": "dlib-clip", "clip": str(clip_dir), "layers": [1, -1]}
    iio.imwrite(tmp_path / "astronaut.png", skdata.astronaut())
    out = tmp_path / "v.gif"
    r = run("generate", "--model", "toy-small", "--identities", str(tmp_path / "s1"), "--identity",
            str(tmp_path / "astronaut.png"), "--prompt", "a person talks", "--frames", "5", "--height", "64",
            "--width", "64", "--steps", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert read_video(out)[0].shape == (5, 64, 64, 3)
    iio.imwrite(tmp_path / "wall.png", np.full((96, 96, 3), 128, np.uint8))
    r = run("generate", "--model", "toy-small", "--identities", str(tmp_path / "s1"), "--identity",
            str(tmp_path / "wall.png"), "--prompt", "x", "--frames", "5", "--steps", "1", "--out", str(out))
    assert r.returncode == 2 and "no face" in r.stderr
