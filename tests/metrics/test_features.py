"""Pluggable feature networks: a local transformers CLIP directory (real scale) and a toy encoder directory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cinetune.metrics import EvalConfig, evaluate
from cinetune.metrics.features import ClipFeatures, ToyFeatures, load_features

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from tests.conftest import tiny_tokenizer

    out = tmp_path_factory.mktemp("clip")
    torch.manual_seed(0)
    cfg = CLIPConfig(text_config=dict(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, max_position_embeddings=32),
                     vision_config=dict(image_size=32, patch_size=8, hidden_size=16, intermediate_size=32,
                                        num_hidden_layers=2, num_attention_heads=2), projection_dim=8)
    CLIPModel(cfg).save_pretrained(out)
    CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                  tokenizer=tiny_tokenizer()).save_pretrained(out)
    return out


def videos(n, F=3, H=40, W=40):
    return [RNG.integers(0, 256, (F, H, W, 3), dtype=np.uint8) for _ in range(n)]


def test_clip_directory_features(tiny_clip_dir):
    f = load_features(str(tiny_clip_dir))
    assert isinstance(f, ClipFeatures)
    v = videos(1)[0]
    emb = f.frame_embeddings(v)
    assert emb.shape == (3, 8) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert f.perceptual(v, v) == pytest.approx(0, abs=1e-6) and f.perceptual(v, 255 - v) > 0
    assert 0 <= f.alignment(v, "a red circle") <= 100
    gen, ref = videos(4), videos(4)
    rep = evaluate(gen, ref, ["a red circle"] * 4, cfg=EvalConfig(metrics=("perceptual", "fvd", "alignment", "temporal"),
                                                                  features=str(tiny_clip_dir), progress=False))
    assert set(rep["summary"]) == {"perceptual", "fvd", "alignment", "temporal_consistency"}
    assert evaluate(ref, ref, cfg=EvalConfig(metrics=("fvd",), features=str(tiny_clip_dir),
                                             progress=False))["summary"]["fvd"] == pytest.approx(0, abs=1e-6)


def test_toy_features_from_a_directory(tmp_path):
    from cinetune.toynets import ToyVideoEncoder

    torch.manual_seed(0)
    ToyVideoEncoder().save_pretrained(tmp_path / "enc")
    f = load_features(f"toy:{tmp_path / 'enc'}")
    assert isinstance(f, ToyFeatures)
    a, b = videos(2, F=5, H=64, W=64)
    assert f.video_features([a, b]).shape == (2, 256)
    assert f.perceptual(a, a) == 0 and f.perceptual(a, b) > 0
    assert 0 <= f.alignment(a, "A red circle moves up on a grey background.") <= 1
    assert np.isnan(f.alignment(a, "a photo of a cat"))


def test_real_face_identity_with_dlib():
    pytest.importorskip("dlib", reason="optional extra: pip install 'cinetune[faces]'")
    skdata = pytest.importorskip("skimage.data", reason="scikit-image supplies the real test photo")
    from cinetune.metrics.identity import DlibFaces

    photo = skdata.astronaut()
    video = np.stack([photo, photo[:, ::-1]])  # the same person, mirrored in frame 2
    rep = evaluate([video], cfg=EvalConfig(metrics=("identity",), faces="dlib", progress=False), face_images=[photo])
    s = rep["summary"]
    assert s["face_found"] == 1.0 and 0.6 < s["face_sim_min"] <= 1.0  # dlib: distance < 0.4 for one person
    f = DlibFaces()
    noise = RNG.integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    assert [len(e) for e in f.video_embeddings(noise)] == [0, 0]
