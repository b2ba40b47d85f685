"""`cinetune assets`: stages run in dependency order against their own staging assets, finished stages are reused,
stopped ones resumed, a changed recipe is refused, and the package is written only from a finished rebuild."""

import json

import pytest

from cinetune.assets import recipe
from cinetune.assets.recipe import Stage
from cinetune.errors import CinetuneError
from cinetune.training import preset_config, train

TINY = ("base", "--preset", "tiny", "steps=2", "checkpoint_every=1")
VAE = ("steps=2", "checkpoint_every=1", "data.frames=5", "data.crop=16", "num_validation=1")
STAGES = (
    Stage("a", ("base", "--preset", "toy-vae", *VAE), asset="tiny-a", minutes=1),
    # reads stage a's export by its asset name: $CINETUNE_ASSETS points at the rebuild's staging folder
    Stage("b", ("base", "--preset", "toy-vae-decoder", *VAE, "init=tiny-a"), needs=("a",), asset="tiny-b", minutes=1),
    Stage("c", TINY, minutes=2),
)


def test_rebuild_runs_in_order_reuses_and_installs(tmp_path, capsys):
    root = tmp_path / "rebuild"
    rows = recipe.print_plan(root, STAGES, jobs=2)
    assert [r["state"] for r in rows] == ["todo"] * 3 and "ETA: 4 one-core minutes" in capsys.readouterr().out
    assert recipe.critical_path(rows, STAGES) == 2
    with pytest.raises(CinetuneError, match="not done"):
        recipe.install(root, STAGES, dest=tmp_path / "pkg")
    recipe.rebuild(root, STAGES, jobs=2, poll=0.2)
    assert [r["state"] for r in recipe.plan(root, STAGES)] == ["done"] * 3
    b_cfg = (root / "runs" / "b" / "config.yaml").read_text()
    assert "init: tiny-a" in b_cfg and "stage `b`" in (root / "assets" / "tiny-b" / "README.md").read_text()
    logs = {p.name: p.stat().st_size for p in (root / "logs").iterdir()}
    recipe.rebuild(root, STAGES, jobs=1, poll=0.2)  # nothing left to do: nothing launched
    assert {p.name: p.stat().st_size for p in (root / "logs").iterdir()} == logs
    partial = recipe.install(root, STAGES, dest=tmp_path / "part", only=["b"])  # b needs a: both go
    assert sorted(p.name for p in partial) == ["tiny-a", "tiny-b"]
    installed = recipe.install(root, STAGES, dest=tmp_path / "pkg")
    assert sorted(p.name for p in installed) == ["tiny-a", "tiny-b"]
    assert (tmp_path / "pkg" / "tiny-a" / "vae" / "config.json").is_file()
    assert not (tmp_path / "pkg" / "tiny-a" / "recipe.json").exists()


def test_a_stopped_stage_resumes_and_a_changed_recipe_is_refused(tmp_path):
    root = tmp_path / "rebuild"
    stage = Stage("c", TINY)
    run = root / "runs" / "c"
    train(preset_config("tiny", {"output_dir": str(run), "steps": 2, "checkpoint_every": 1}), stop_after=1,
          progress=False)
    assert recipe.status(root, stage)[:2] == ("resume", 1)
    recipe.rebuild(root, (stage,), poll=0.2)
    assert recipe.status(root, stage)[0] == "done"
    assert "resumed from" in (root / "logs" / "c.log").read_text()
    changed = Stage("c", (*TINY, "optim.lr=0.5"))
    with pytest.raises(CinetuneError, match="recipe changed"):
        recipe.status(root, changed)
    assert json.loads((run / "recipe.json").read_text())["train"] == list(TINY)


def test_unknown_stages_and_cycles_of_names_are_errors(tmp_path):
    with pytest.raises(CinetuneError, match="unknown stage"):
        recipe.rebuild(tmp_path, STAGES, only=["zzz"])
    with pytest.raises(CinetuneError, match="needs unknown"):
        recipe.rebuild(tmp_path, (Stage("x", TINY, needs=("y",)),))
    with pytest.raises(CinetuneError, match="jobs"):
        recipe.rebuild(tmp_path, STAGES, jobs=0)


def test_the_shipped_recipe_names_real_presets_and_covers_every_shipped_model():
    from cinetune.backbones.presets import PACKAGE_ASSETS

    for s in recipe.STAGES:
        recipe.recipe_of(s)  # raises on an unknown preset
        assert all(n in {t.name for t in recipe.STAGES} for n in s.needs)
    shipped = {p.name for p in PACKAGE_ASSETS.iterdir() if (p / "README.md").is_file()}
    assert shipped <= {s.asset for s in recipe.STAGES}


def test_a_stage_another_process_trains_is_left_alone(tmp_path):
    import os

    root = tmp_path / "rebuild"
    run = root / "runs" / "c"
    run.mkdir(parents=True)
    (run / "running.pid").write_text(str(os.getpid()))  # a live process holds it
    assert recipe.status(root, Stage("c", TINY))[0] == "running"
    (run / "running.pid").write_text("999999999")  # a dead one does not
    assert recipe.status(root, Stage("c", TINY))[0] == "todo"

