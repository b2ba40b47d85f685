from pathlib import Path

from safetensors.torch import load_file

from cinetune.bench.harness import input_digest, train_or_reuse
from cinetune.io import write_json
from cinetune.training import preset_config, train


def _weights(run: Path) -> dict:
    return load_file(run / "final" / "transformer" / "diffusion_pytorch_model.safetensors")


def test_finished_run_with_same_settings_is_reused(tmp_path, capsys):
    cfg = preset_config("tiny", {"output_dir": str(tmp_path / "run"), "steps": 3, "checkpoint_every": 3})
    out = train_or_reuse(cfg)
    stamp = (out / "final").stat().st_mtime_ns
    capsys.readouterr()
    # bookkeeping differs (checkpoint cadence, logging): still the same run
    again = train_or_reuse(preset_config("tiny", {"output_dir": str(out), "steps": 3, "checkpoint_every": 1,
                                                  "log_every": 1}))
    assert again == out and (out / "final").stat().st_mtime_ns == stamp
    assert "reusing" in capsys.readouterr().out
    # a config saved before a field existed (here data.image_share) reads with its default: still the same run
    saved = (out / "config.yaml").read_text()
    (out / "config.yaml").write_text("\n".join(l for l in saved.splitlines() if "image_share" not in l) + "\n")
    assert train_or_reuse(cfg) == out and (out / "final").stat().st_mtime_ns == stamp


def test_changed_settings_retrain_and_a_stopped_run_resumes(tmp_path):
    base = {"output_dir": str(tmp_path / "run"), "steps": 4, "checkpoint_every": 2}
    straight = train(preset_config("tiny", {**base, "output_dir": str(tmp_path / "straight")}), progress=False)
    train(preset_config("tiny", base), stop_after=2, progress=False)  # killed after the step-2 checkpoint
    write_json(tmp_path / "run" / "inputs.json", {"sha256": input_digest(preset_config("tiny", base))})
    out = train_or_reuse(preset_config("tiny", base))
    a, b = _weights(straight), _weights(out)
    assert all((a[k] == b[k]).all() for k in a)
    stamp = (out / "final").stat().st_mtime_ns
    train_or_reuse(preset_config("tiny", {**base, "optim": {"lr": 1e-2}}))  # a different run: trained again
    assert (out / "final").stat().st_mtime_ns != stamp


def test_other_input_weights_retrain(tmp_path):
    first = train(preset_config("tiny", {"output_dir": str(tmp_path / "first"), "steps": 2, "checkpoint_every": 2}),
                  progress=False)
    init = first / "final" / "transformer"
    cfg = preset_config("tiny", {"output_dir": str(tmp_path / "run"), "steps": 2, "checkpoint_every": 2,
                                 "init": str(init)})
    digest = input_digest(cfg)
    out = train_or_reuse(cfg)
    stamp = (out / "final").stat().st_mtime_ns
    assert train_or_reuse(cfg) == out and (out / "final").stat().st_mtime_ns == stamp
    # the init weights change (say, a retrained base) under the same config: not the same run any more
    w = init / "diffusion_pytorch_model.safetensors"
    from safetensors.torch import save_file

    save_file({k: v + 1 for k, v in load_file(w).items()}, str(w))
    assert input_digest(cfg) != digest
    train_or_reuse(cfg)
    assert (out / "final").stat().st_mtime_ns != stamp
