"""Golden outputs against diffusers' own pipelines: the same tiny checkpoint directory, prompt and initial latents
give the same video through `TextToVideoPipeline` as through WanPipeline / CogVideoXPipeline (both loaded from disk,
so both in eval mode)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cinetune.pipelines import TextToVideoPipeline
from tests.conftest import tiny_tokenizer

PROMPT = "a red circle moves left"


def _cogvideox_components(scheduler):
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    tr = CogVideoXTransformer3DModel(num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=4,
                                     time_embed_dim=2, text_embed_dim=32, num_layers=1, sample_width=8, sample_height=8,
                                     sample_frames=9, patch_size=2, temporal_compression_ratio=4, max_text_seq_length=16,
                                     use_rotary_positional_embeddings=True)
    torch.manual_seed(1)
    vae = AutoencoderKLCogVideoX(in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
                                 up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8),
                                 latent_channels=4, layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4)
    torch.manual_seed(2)
    te = T5EncoderModel(T5Config(d_model=32, d_ff=37, d_kv=8, num_heads=4, num_layers=2, vocab_size=1103,
                                 relative_attention_num_buckets=8))
    return dict(transformer=tr, vae=vae, text_encoder=te, tokenizer=tiny_tokenizer(), scheduler=scheduler)


def _levels(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def _to_uint8(frames: np.ndarray) -> np.ndarray:
    return (frames * 255).round().astype(np.uint8)


@pytest.mark.parametrize("scheduler", ["CogVideoXDDIMScheduler", "CogVideoXDPMScheduler"])
def test_cogvideox_matches_diffusers(tmp_path, scheduler):
    import diffusers
    from diffusers import CogVideoXPipeline

    CogVideoXPipeline(**_cogvideox_components(getattr(diffusers, scheduler)())).save_pretrained(tmp_path)
    lat = torch.randn(1, 3, 4, 4, 4, generator=torch.Generator().manual_seed(0))  # (B, F', C, h, w): diffusers' layout
    kw = dict(num_frames=9, height=32, width=32, num_inference_steps=3, guidance_scale=5.0, max_sequence_length=16)
    ref = CogVideoXPipeline.from_pretrained(tmp_path)(PROMPT, latents=lat.clone(), output_type="np",
                                                       generator=torch.Generator().manual_seed(0), **kw).frames[0]
    ours = TextToVideoPipeline.from_pretrained(str(tmp_path), "cpu")(
        PROMPT, frames=9, height=32, width=32, steps=3, guidance=5.0, latents=lat.transpose(1, 2).clone(), seed=0,
        progress=False).videos[0]
    assert _levels(ours, _to_uint8(ref)) <= 1


def test_wan_matches_diffusers(tiny_wan_dir):
    from diffusers import WanPipeline

    lat = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    ref = WanPipeline.from_pretrained(tiny_wan_dir)(PROMPT, num_frames=5, height=32, width=32, num_inference_steps=3,
                                                    guidance_scale=5.0, latents=lat.clone(), output_type="np",
                                                    max_sequence_length=512).frames[0]
    ours = TextToVideoPipeline.from_pretrained(str(tiny_wan_dir), "cpu")(
        PROMPT, frames=5, height=32, width=32, steps=3, guidance=5.0, latents=lat.clone(), progress=False).videos[0]
    assert _levels(ours, _to_uint8(ref)) <= 1
