import torch

from cinetune.bench.memory import _build, child


def test_the_built_model_holds_its_load_dtypes_and_the_child_reports_peaks():
    m = _build("tiny", torch.bfloat16)
    dtypes = {n: p.dtype for n, p in m.named_parameters()}
    assert dtypes["blocks.0.ffn.net.0.proj.weight"] == torch.bfloat16
    assert dtypes["scale_shift_table"] == torch.float32  # one of diffusers' fp32 modules, as from_pretrained keeps it
    assert all(p.device.type == "cpu" and not p.is_meta for p in m.parameters())
    for setting in ("bf16", "fp8 storage, bf16 compute"):
        r = child(setting, "tiny", "cpu")
        assert r["params"] == sum(p.numel() for p in m.parameters()) and r["rss_gib"] > 0


def test_the_training_child_steps_each_setting_and_fp8_holds_fewer_bytes():
    from cinetune.bench.memory import TRAIN_SETTINGS, train_child

    rows = {s: train_child(s, "tiny", "cpu") for s in TRAIN_SETTINGS}
    fp32, bf16, fp8 = rows.values()
    assert fp32["trained"] == bf16["trained"] == fp8["trained"] > 0
    assert fp32["weights_gib"] > bf16["weights_gib"] > fp8["weights_gib"] > 0
