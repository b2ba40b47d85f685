"""Memory options on a tiny diffusers-format Wan directory: load dtype with diffusers' fp32 modules kept, offloading
(model, block, leaf: the same video), VAE tiling and slicing, fp8 layerwise casting, releasing the text encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cinetune.backbones import load_backbone
from cinetune.backbones.memory import MemoryOptions, compute_dtype
from cinetune.errors import CinetuneError
from cinetune.pipelines import TextToVideoPipeline

KW = dict(frames=5, height=32, width=32, steps=2, guidance=3.0, seed=0, progress=False)


def test_a_bf16_load_keeps_the_models_fp32_modules(tiny_wan_dir):
    tr = load_backbone(str(tiny_wan_dir), dtype=torch.bfloat16).transformer
    dtypes = {n: p.dtype for n, p in tr.named_parameters()}
    assert dtypes["patch_embedding.weight"] == torch.bfloat16 and dtypes["scale_shift_table"] == torch.float32
    assert compute_dtype(tr) == torch.bfloat16
    video = TextToVideoPipeline(load_backbone(str(tiny_wan_dir), dtype=torch.bfloat16))("a red circle", **KW).videos
    assert video.shape == (1, 5, 32, 32, 3)


@pytest.mark.parametrize("opts", [MemoryOptions(offload="model"), MemoryOptions(offload="block"),
                                  MemoryOptions(offload="leaf"), MemoryOptions(vae_tiling=True, vae_slicing=True)],
                         ids=["model-offload", "block-offload", "leaf-offload", "vae-tiling-slicing"])
def test_offloading_and_vae_options_give_the_same_video(tiny_wan_dir, opts):
    plain = TextToVideoPipeline.from_pretrained(str(tiny_wan_dir), "cpu")(["a red circle", "a star"], **KW).videos
    pipe = TextToVideoPipeline.from_pretrained(str(tiny_wan_dir), "cpu", memory=opts)
    np.testing.assert_array_equal(pipe(["a red circle", "a star"], **KW).videos, plain)
    assert pipe.backbone.device == torch.device("cpu")


def test_fp8_storage_computes_in_bf16(tiny_wan_dir):
    pipe = TextToVideoPipeline.from_pretrained(str(tiny_wan_dir), "cpu", memory=MemoryOptions(dtype="bf16", fp8=True))
    stored = {p.dtype for p in pipe.backbone.transformer.parameters()}
    assert torch.float8_e4m3fn in stored and compute_dtype(pipe.backbone.transformer) == torch.bfloat16
    out = pipe("a red circle", **KW)
    assert torch.isfinite(out.latents).all() and out.videos.shape == (1, 5, 32, 32, 3)
    with pytest.raises(CinetuneError, match="fp8 .* bf16 or fp16"):
        MemoryOptions(fp8=True)


def test_a_released_text_encoder_serves_cached_prompts_only(tiny_wan_dir):
    pipe = TextToVideoPipeline.from_pretrained(str(tiny_wan_dir), "cpu",
                                               memory=MemoryOptions(release_text_encoder=True))
    first = pipe("a red circle", **KW).videos
    assert pipe.backbone.text_encoder.model is None
    np.testing.assert_array_equal(pipe("a red circle", **KW).videos, first)  # embeddings cached before release
    with pytest.raises(CinetuneError, match="released"):
        pipe("a blue square", **KW)


def test_bad_memory_options_are_errors():
    with pytest.raises(CinetuneError, match="dtype must be"):
        MemoryOptions(dtype="int8")
    with pytest.raises(CinetuneError, match="offload must be"):
        MemoryOptions(offload="disk")
