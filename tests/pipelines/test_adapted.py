"""Controlled generation with each control method on a random-init toy-small: identity at init, guidance window,
scale, condition fitting, adapter save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cinetune.methods.control.model import ControlModel, new_control_model
from cinetune.backbones import load_backbone
from cinetune.errors import CinetuneError
from cinetune.pipelines import ControlledPipeline, TextToVideoPipeline, fit_condition
from cinetune.toyworld import RenderConfig, render_clip
from cinetune.conditions import exact_condition

KW = dict(frames=5, height=32, width=32, steps=3, guidance=3.0, seed=0, progress=False)


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    return TextToVideoPipeline(load_backbone("toy-small", random_init=True))


@pytest.fixture(scope="module")
def controls():
    clip, _ = render_clip(5, RenderConfig(frames=5, height=32, width=32))
    return {"depth": exact_condition(clip, "depth"), "canny": exact_condition(clip, "edges")}


def small(method, pipe, kinds, norm="zero"):
    torch.manual_seed(1)
    kw = dict(widths=(16, 16, 32), block_widths=(32, 64), norm=norm) if method == "controlnext" else \
        dict(encoder_widths=(16, 16, 8), num_blocks=2, stride=2) if method == "dit-controlnet" else {}
    return new_control_model(method, pipe.backbone, kinds, **kw)


@pytest.mark.parametrize("method", ["controlnext", "dit-controlnet", "concat"])
def test_untrained_control_and_scale_zero(method, pipe, controls):
    base = pipe("a red circle", **KW).videos
    model = small(method, pipe, ["depth", "canny"])
    ctl = ControlledPipeline(pipe, model)
    out = ctl("a red circle", controls=controls, **KW).videos
    np.testing.assert_array_equal(out, base)  # zero-initialised branches / projection: exact identity
    np.testing.assert_array_equal(ctl("a red circle", controls=controls, control_scale=0.0, **KW).videos, base)
    np.testing.assert_array_equal(pipe("a red circle", **KW).videos, base)  # detached after the call


def test_guidance_window_and_round_trip(pipe, controls, tmp_path):
    model = small("controlnext", pipe, ["depth"], norm="paper")  # cross-normalised: acts from step one
    ctl = ControlledPipeline(pipe, model)
    full = ctl("a red circle", controls=controls, **KW).videos
    late = ctl("a red circle", controls=controls, control_start=0.5, **KW).videos
    assert not np.array_equal(full, late)
    model.save(tmp_path / "ad")
    back = ControlModel.load(tmp_path / "ad")
    assert back.method == "controlnext" and back.kinds == ["depth"]
    np.testing.assert_array_equal(ControlledPipeline(pipe, back)("a red circle", controls=controls, **KW).videos, full)
    with pytest.raises(CinetuneError, match="control_start"):
        ctl("x", controls=controls, control_start=0.9, control_end=0.5, **KW)
    with pytest.raises(CinetuneError, match="missing depth"):
        ctl("x", controls={"canny": controls["canny"]}, **KW)


def test_concat_trained_weights_round_trip(pipe, controls, tmp_path):
    model = small("concat", pipe, ["depth", "canny"])
    att = model.attach(pipe.backbone, trainable=True)
    assert att.inner.patch_embedding.weight.requires_grad
    with torch.no_grad():
        att.inner.patch_embedding.weight[:, 16:].normal_(0, 0.05)
        for n, p in pipe.backbone.transformer.named_parameters():
            if "attn1.to_out" in n:
                p.add_(0.01)
    model = att.collect()
    att.remove()
    assert model.patch and model.finetuned
    for n, p in pipe.backbone.transformer.named_parameters():  # removal restored the base weights
        if "attn1.to_out" in n:
            assert torch.equal(p, att.base[n])
    a = ControlledPipeline(pipe, model)("a red circle", controls=controls, **KW).videos
    model.save(tmp_path / "cc")
    b = ControlledPipeline(pipe, ControlModel.load(tmp_path / "cc"))("a red circle", controls=controls, **KW).videos
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method", ["controlnext", "concat"])
def test_one_condition_per_prompt_in_one_call(method, pipe, controls):
    """A batch with one condition video per prompt samples each prompt as a call of its own with that condition
    (same starting noise), and a condition for every prompt is shared by all."""
    model = small(method, pipe, ["depth"], norm="paper")
    if method == "concat":  # a trained-looking condition slot (zero at init)
        att = model.attach(pipe.backbone, trainable=True)
        with torch.no_grad():
            att.inner.patch_embedding.weight[:, 16:].normal_(0, 0.05)
        model = att.collect()
        att.remove()
    other, _ = render_clip(9, RenderConfig(frames=5, height=32, width=32))
    depths = [controls["depth"], exact_condition(other, "depth")]
    prompts = ["a red circle", "a blue square"]
    kw = {k: v for k, v in KW.items() if k != "seed"}
    noise = torch.randn((2, *pipe.backbone.codec.latent_shape(5, 32, 32)), generator=torch.Generator().manual_seed(3))
    ctl = ControlledPipeline(pipe, model)
    both = ctl(prompts, controls={"depth": depths}, latents=noise, **kw).latents
    for i in range(2):
        alone = ctl(prompts[i], controls={"depth": depths[i]}, latents=noise[i:i + 1], **kw).latents
        torch.testing.assert_close(both[i:i + 1], alone, atol=1e-4, rtol=1e-4)
    shared = ctl(prompts, controls={"depth": depths[0]}, latents=noise, **kw).latents
    torch.testing.assert_close(shared[0], both[0], atol=1e-4, rtol=1e-4)
    assert (shared[1] - both[1]).abs().max() > 1e-3  # the second prompt's condition acts
    stacked = ctl(prompts, controls={"depth": np.stack(depths)}, latents=noise, **kw).latents
    torch.testing.assert_close(stacked, both)
    with pytest.raises(CinetuneError, match="3 videos for 2 prompts"):
        ctl(prompts, controls={"depth": depths + depths[:1]}, **KW)


def test_fit_condition():
    v = np.zeros((9, 64, 96, 3), np.uint8)
    v[:, :, 48:] = 255
    out = fit_condition(v, 5, 32, 48)
    assert out.shape == (5, 32, 48, 3) and out[0, 0, 0, 0] == 0 and out[0, 0, -1, 0] == 255
    with pytest.raises(CinetuneError, match="frames"):
        fit_condition(v, 17, 64, 96)
    with pytest.raises(CinetuneError, match="aspect"):
        fit_condition(v, 5, 32, 32)
    with pytest.raises(CinetuneError, match="not a cinetune control adapter"):
        ControlModel.load("/nonexistent")


def test_generate_cli_with_an_adapter(pipe, tmp_path, monkeypatch):
    from cinetune.cli import main
    from cinetune.io import read_video, write_video

    model = small("dit-controlnet", pipe, ["canny"])
    model.save(tmp_path / "ad")
    clip, _ = render_clip(2, RenderConfig(frames=5, height=32, width=32))
    write_video(tmp_path / "ref.mp4", clip.video)
    common = ["generate", "--prompt", "a red circle", "--model", "toy-small", "--frames", "5", "--height", "32",
              "--width", "32", "--steps", "2"]
    assert main(common + ["--adapter", str(tmp_path / "ad"), "--control-from", str(tmp_path / "ref.mp4"),
                          "--kinds", "canny", "--out", str(tmp_path / "o.mp4")]) == 0
    assert read_video(tmp_path / "o.mp4")[0].shape == (5, 32, 32, 3)
    assert main(common + ["--adapter", str(tmp_path / "ad"), "--out", str(tmp_path / "x.mp4")]) == 2
    assert main(common + ["--control", "canny=" + str(tmp_path / "ref.mp4"), "--out", str(tmp_path / "x.mp4")]) == 2
    assert main(common + ["--adapter", str(tmp_path / "ad"), "--control", "depth=" + str(tmp_path / "ref.mp4"),
                          "--out", str(tmp_path / "x.mp4")]) == 2  # the adapter takes canny
    assert not (tmp_path / "x.mp4").exists()


def test_one_set_of_people_per_prompt_in_one_call(pipe):
    """Ingredients with a set of reference photos per prompt samples each prompt as it would alone with its set."""
    from cinetune.methods.ingredients.model import IngredientsModel
    from cinetune.toynets import reference_portrait

    torch.manual_seed(0)
    model = IngredientsModel.new(pipe.backbone, interval=2, num_queries=4, id_tokens=2, projector_dim=32)
    with torch.no_grad():  # acting weights (zero-initialised outputs would make every set look alike)
        for inj in model.module.injectors.values():
            inj.to_out.weight.normal_(0, 0.05)
        model.module.slot.normal_(0, 0.05)
    photos = [reference_portrait(k).video[0] for k in (1, 4, 9, 13)]
    sets = [photos[:2], photos[2:]]
    prompts = ["two people talk", "two people nod"]
    kw = dict(frames=5, height=64, width=64, steps=2, guidance=3.0, progress=False)
    noise = torch.randn((2, *pipe.backbone.codec.latent_shape(5, 64, 64)), generator=torch.Generator().manual_seed(3))
    ing = ControlledPipeline(pipe, model)
    both = ing(prompts, identities=sets, latents=noise, **kw).latents
    for i in range(2):
        alone = ing(prompts[i], identities=sets[i], latents=noise[i:i + 1], **kw).latents
        torch.testing.assert_close(both[i:i + 1], alone, atol=1e-4, rtol=1e-4)
    shared = ing(prompts, identities=sets[0], latents=noise, **kw).latents
    assert (shared[1] - both[1]).abs().max() > 1e-3  # the second set of people acts
    with pytest.raises(CinetuneError, match="same number of people"):
        ing(prompts, identities=[photos[:2], photos[2:3]], **kw)
    with pytest.raises(CinetuneError, match="3 sets of reference images for 2 prompts"):
        ing(prompts, identities=[photos[:1]] * 3, **kw)
