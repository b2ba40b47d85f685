"""The shipped accelerate configurations parse with accelerate's own loader, name the strategy they say, and (FSDP)
wrap block classes diffusers has. FSDP and DeepSpeed need GPUs to run; the two-process DDP run is test_trainer's."""

from pathlib import Path

import importlib

import pytest
from accelerate.commands.config.config_args import load_config_from_file

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name, kind", [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("fsdp-offload", "FSDP"), ("zero2", "DEEPSPEED"),
                                        ("zero3", "DEEPSPEED"), ("distill-wan", "MULTI_GPU")])
def test_shipped_accelerate_configs(name, kind):
    cfg = load_config_from_file(str(CONFIGS / f"accelerate-{name}-8gpu.yaml"))
    assert cfg.distributed_type.value == kind and cfg.num_processes == 8 and cfg.mixed_precision == "bf16"
    if kind == "FSDP":
        assert cfg.fsdp_config["fsdp_version"] == 2
        assert cfg.fsdp_config["fsdp_offload_params"] == (name == "fsdp-offload")
        for cls in cfg.fsdp_config["fsdp_transformer_layer_cls_to_wrap"].split(","):
            mods = [importlib.import_module(f"diffusers.models.transformers.{m}")
                    for m in ("transformer_wan", "cogvideox_transformer_3d")]
            assert any(hasattr(m, cls) for m in mods), cls
    if kind == "DEEPSPEED":
        assert cfg.deepspeed_config["zero_stage"] == int(name[-1])
