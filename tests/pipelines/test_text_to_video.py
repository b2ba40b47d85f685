import numpy as np
import pytest
import torch

from cinetune.backbones import load_backbone
from cinetune.errors import CinetuneError
from cinetune.pipelines import TextToVideoPipeline

# Regression values of the tiny Wan pipeline below (torch 2.13 CPU, fp32), final latents[0, :4, 0, 0, 0].
GOLDEN = [-1.2326, -0.1467, 0.8498, 0.3732]


@pytest.fixture(scope="module")
def pipe(tiny_wan_dir):
    return TextToVideoPipeline(load_backbone(str(tiny_wan_dir)))


def test_golden_slice(pipe):
    out = pipe("a red circle moves left", frames=5, height=32, width=32, steps=3, guidance=4.0, seed=0,
               progress=False)
    assert out.videos.shape == (1, 5, 32, 32, 3) and out.videos.dtype == np.uint8
    got = out.latents[0, :4, 0, 0, 0].tolist()
    assert np.allclose(got, GOLDEN, atol=2e-3), got


def test_seed_determinism_and_batch(pipe):
    kw = dict(frames=5, height=32, width=32, steps=2, guidance=3.0, progress=False)
    a = pipe(["a red circle", "a blue square"], seed=1, **kw)
    b = pipe(["a red circle", "a blue square"], seed=1, **kw)
    c = pipe(["a red circle", "a blue square"], seed=2, **kw)
    assert a.videos.shape[0] == 2
    assert torch.equal(a.latents, b.latents)
    assert not torch.equal(a.latents, c.latents)
    assert not torch.equal(a.latents[0], a.latents[1])


def test_guidance_changes_the_result(pipe):
    kw = dict(frames=5, height=32, width=32, steps=2, seed=0, progress=False)
    assert not torch.equal(pipe("a red circle", guidance=1.0, **kw).latents,
                           pipe("a red circle", guidance=6.0, **kw).latents)


@pytest.mark.parametrize("size", [dict(frames=6), dict(height=20), dict(width=0), dict(frames=5, steps=0)])
def test_bad_sizes_are_refused(pipe, size):
    with pytest.raises(CinetuneError):
        pipe("a red circle", **{"frames": 5, "height": 32, "width": 32, **size}, progress=False)


def test_prompt_embeds_path(pipe):
    emb = pipe.encode_prompt(["a star"])
    a = pipe(prompt_embeds=emb, frames=5, height=32, width=32, steps=2, progress=False)
    b = pipe("a star", frames=5, height=32, width=32, steps=2, progress=False)
    assert torch.equal(a.latents, b.latents)
