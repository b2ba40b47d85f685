"""Training beside a frozen backbone held in bf16 with its frozen layers stored in fp8 (backbone_dtype /
backbone_fp8): what trains stays fp32, the frozen layers are fp8, the run trains and exports, and the options are
refused where they make no sense."""

from __future__ import annotations

import math

import pytest
import torch

from cinetune.backbones import load_backbone
from cinetune.backbones.memory import enable_fp8
from cinetune.core import add_lora
from cinetune.errors import CinetuneError
from cinetune.methods.control.model import ControlModel
from cinetune.training import preset_config, train
from cinetune.training.tasks import make_task

FP8 = torch.float8_e4m3fn


def control_cfg(tmp_path, method="controlnext", **over):
    return preset_config("toy-control", {
        "backbone": "toy-small", "init": "", "output_dir": str(tmp_path / method), "steps": 2, "batch_size": 2,
        "checkpoint_every": 2, "validate_every": 0, "num_validation": 1, "validation_steps": 2,
        "mixed_precision": "bf16", "backbone_dtype": "bf16", "backbone_fp8": True, "log_every": 1,
        "data": {"frames": 5, "height": 32, "width": 32, "cache_path": str(tmp_path / "cache.safetensors")},
        "control": {"method": method, "conditions": "canny,depth", "clip_cache": 4}, **over})


def train_keeping_task(cfg):
    """(the run's directory, the task it trained) for a look inside after training."""
    made = []

    def make(c, device):
        made.append(make_task(c, device))
        return made[-1]

    return train(cfg, progress=False, make_task_fn=make), made[-1]


def test_frozen_only_fp8_skips_trained_layers_and_diffusers_exceptions():
    tr = load_backbone("toy-small", random_init=True, dtype=torch.bfloat16).transformer.requires_grad_(False)
    add_lora(tr, rank=2, name="t")
    for n, p in tr.named_parameters():
        p.requires_grad_("lora_" in n or "blocks.0.attn1.to_out" in n)
    n = enable_fp8(tr, torch.bfloat16, frozen_only=True)
    params = dict(tr.named_parameters())
    assert n > 0 and params["blocks.1.attn1.to_q.base_layer.weight"].dtype == FP8
    assert params["blocks.0.attn1.to_out.0.base_layer.weight"].dtype == torch.bfloat16  # it trains
    assert params["blocks.1.attn1.to_q.lora_A.t.weight"].dtype != FP8
    assert params["patch_embedding.weight"].dtype == torch.bfloat16 and params["proj_out.weight"].dtype != FP8
    assert params["condition_embedder.time_embedder.linear_1.weight"].dtype != FP8  # Wan's own exception
    g = torch.Generator().manual_seed(0)
    lat, emb = torch.randn(1, 16, 2, 8, 8, generator=g), torch.randn(1, 6, 384, generator=g)
    with torch.autocast("cpu", torch.bfloat16):
        out = tr(hidden_states=lat.bfloat16(), timestep=torch.tensor([500.0]), encoder_hidden_states=emb.bfloat16(),
                 return_dict=False)[0]
    out.float().square().mean().backward()
    assert torch.isfinite(out.float()).all() and params["blocks.0.attn1.to_out.0.base_layer.weight"].grad is not None


def test_controlnext_trains_beside_a_bf16_backbone_in_fp8(tmp_path):
    out, task = train_keeping_task(control_cfg(tmp_path))
    params = dict(task.backbone.transformer.named_parameters())
    trained = {n for n, p in params.items() if p.requires_grad}
    assert trained and all("attn1.to_out" in n for n in trained)
    assert all(params[n].dtype == torch.float32 for n in trained)  # the fine-tuned subset trains in fp32
    assert params["blocks.0.ffn.net.0.proj.weight"].dtype == FP8 and params["blocks.0.attn2.to_k.weight"].dtype == FP8
    assert all(p.dtype == torch.float32 for p in task.control.module.parameters())
    assert set(task.att.base) == trained  # only the fine-tuned weights are kept as the base for deltas
    rows = (out / "metrics.csv").read_text().splitlines()[1:]
    assert rows and all(math.isfinite(float(r.split(",")[1])) for r in rows)
    model = ControlModel.load(out / "final" / "control")
    assert model.finetuned and all(t.dtype == torch.float32 for t in model.finetuned.values())


@pytest.mark.parametrize("over,match", [
    ({"backbone_fp8": True, "backbone_dtype": "fp32"}, "bf16 or fp16"),
    ({"backbone_dtype": "int8"}, "backbone_dtype must be"),
    ({"mixed_precision": "no"}, "needs autocast"),
    ({"task": "vae"}, "for the tasks on a DiT"),
    ({"task": "dit"}, "needs lora_rank"),
    ({"task": "distill"}, "deltas from the teacher's exact weights"),
])
def test_bad_backbone_memory_settings_are_errors(tmp_path, over, match):
    with pytest.raises(CinetuneError, match=match):
        control_cfg(tmp_path, **over).validate()


def test_dit_controlnet_copies_of_a_bf16_backbone_train_in_fp32(tmp_path):
    out, task = train_keeping_task(control_cfg(tmp_path, "dit-controlnet"))
    assert {p.dtype for p in task.control.module.parameters()} == {torch.float32}
    assert ControlModel.load(out / "final" / "control").module.dtype == torch.float32
