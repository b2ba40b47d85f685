"""A user's LoRA file on the backbone: what diffusers' own loader does to WanPipeline, in diffusers' format and in the
original Wan format diffusers converts, scaled, stacked and removed exactly."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from cinetune.backbones import load_backbone
from cinetune.core.lora_file import LoraFile, parse_lora_spec
from cinetune.errors import CinetuneError
from tests.methods.distill.test_lora import _forward


def _self_attention_lora(transformer, rank=4, seed=0) -> dict[str, torch.Tensor]:
    """Random rank-`rank` LoRA on every block's self-attention q/k/v/o, diffusers' key names."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for i in range(len(transformer.blocks)):
        for c in ("to_q", "to_k", "to_v", "to_out.0"):
            lin = transformer.get_submodule(f"blocks.{i}.attn1.{c}")
            out[f"transformer.blocks.{i}.attn1.{c}.lora_A.weight"] = 0.3 * torch.randn(rank, lin.in_features, generator=g)
            out[f"transformer.blocks.{i}.attn1.{c}.lora_B.weight"] = 0.3 * torch.randn(lin.out_features, rank, generator=g)
    return out


def _original_wan_names(lora: dict) -> dict:
    names = {"to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "o"}
    out = {}
    for k, v in lora.items():
        block, rest = k.removeprefix("transformer.").split(".attn1.")
        layer, ab = rest.rsplit(".lora_", 1)
        out[f"diffusion_model.{block}.self_attn.{names[layer]}.lora_{ab}"] = v
    return out


def test_a_lora_file_matches_diffusers_loader_scales_and_is_removed_exactly(tiny_wan_dir, tmp_path):
    from diffusers import WanPipeline

    backbone = load_backbone(str(tiny_wan_dir))
    lora = _self_attention_lora(backbone.transformer)
    save_file(lora, str(tmp_path / "mine.safetensors"))
    pipe = WanPipeline.from_pretrained(tiny_wan_dir)
    pipe.load_lora_weights(str(tmp_path), weight_name="mine.safetensors", adapter_name="ref")
    pipe.set_adapters(["ref"], [0.5])
    want = _forward(pipe.transformer)
    base = _forward(backbone.transformer)
    names = [n for n, _ in backbone.transformer.named_parameters()]
    for spec in (f"{tmp_path / 'mine.safetensors'}:0.5", str(tmp_path / "orig.safetensors") + ":0.5"):
        if "orig" in spec:  # the original Wan (non-diffusers) layout: diffusers' conversion reads it
            save_file(_original_wan_names(lora), str(tmp_path / "orig.safetensors"))
        with LoraFile(*parse_lora_spec(spec)).attach(backbone):
            torch.testing.assert_close(_forward(backbone.transformer), want, atol=1e-5, rtol=1e-4)
        assert torch.equal(_forward(backbone.transformer), base)  # removed: the base, module for module
        assert [n for n, _ in backbone.transformer.named_parameters()] == names


def test_two_lora_files_stack(tiny_wan_dir, tmp_path):
    backbone = load_backbone(str(tiny_wan_dir))
    a, b = _self_attention_lora(backbone.transformer, seed=1), _self_attention_lora(backbone.transformer, seed=2)
    save_file(a, str(tmp_path / "a.safetensors"))
    save_file(b, str(tmp_path / "b.safetensors"))
    both = {k: torch.cat([a[k], b[k]], 0 if "lora_A" in k else 1) for k in a}  # one rank-8 LoRA = the sum of the two
    save_file(both, str(tmp_path / "both.safetensors"))
    # alpha defaults to the rank, so the rank-8 file scales by 1 as the two rank-4 ones do
    with LoraFile(tmp_path / "both.safetensors").attach(backbone):
        want = _forward(backbone.transformer)
    with LoraFile(tmp_path / "a.safetensors").attach(backbone), LoraFile(tmp_path / "b.safetensors").attach(backbone):
        torch.testing.assert_close(_forward(backbone.transformer), want, atol=1e-5, rtol=1e-4)
    assert not getattr(backbone.transformer, "peft_config", None)


def test_bad_lora_files_are_one_line_errors(tiny_wan_dir, tmp_path):
    backbone = load_backbone(str(tiny_wan_dir))
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    save_file({"transformer.nowhere.lora_A.weight": torch.zeros(2, 4), "transformer.nowhere.lora_B.weight":
               torch.zeros(4, 2)}, str(tmp_path / "other.safetensors"))
    (tmp_path / "w.bin").write_bytes(b"x")
    for path, msg in [(tmp_path / "missing.safetensors", "no such file"), (tmp_path / "w.bin", "only .safetensors"),
                      (tmp_path / "junk.safetensors", "unreadable")]:
        with pytest.raises(CinetuneError, match=msg):
            LoraFile(path)
    with pytest.raises(CinetuneError, match="does not fit|none of its weights"):
        LoraFile(tmp_path / "other.safetensors").attach(backbone)
    assert not getattr(backbone.transformer, "peft_config", None)
    assert parse_lora_spec("a:b/c.safetensors") == ("a:b/c.safetensors", 1.0)
    assert parse_lora_spec("x.safetensors:0.7") == ("x.safetensors", 0.7)
