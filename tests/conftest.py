"""Shared tiny fixtures: everything is built offline, on CPU, in seconds."""

from __future__ import annotations

import pytest
import torch

WORDS = "a the red green blue yellow circle square star moves left right up down on background spins person waves".split()


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def tiny_wan_components(seed: int = 0) -> dict:
    """diffusers' own tiny Wan test configuration, deterministic weights."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12,
                                        in_channels=16, out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32,
                                        num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                                        rope_max_seq_len=32)
    torch.manual_seed(seed + 1)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    torch.manual_seed(seed + 2)
    text_encoder = T5EncoderModel(T5Config(d_model=32, d_ff=37, d_kv=8, num_heads=4, num_layers=5, vocab_size=1103,
                                           relative_attention_num_buckets=8))
    return dict(transformer=transformer, vae=vae, text_encoder=text_encoder, tokenizer=tiny_tokenizer(),
                scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0))


@pytest.fixture(scope="session")
def tiny_wan_dir(tmp_path_factory):
    """A tiny WanPipeline written with diffusers' save_pretrained (the layout real checkpoints have)."""
    from diffusers import WanPipeline

    path = tmp_path_factory.mktemp("tiny-wan")
    WanPipeline(**tiny_wan_components()).save_pretrained(path, safe_serialization=True)
    return path
