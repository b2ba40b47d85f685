"""Ingredients from the CLI on tiny runs: stage 1 and stage 2 from it (each resumes bit-identically), generation with one and
two reference photos; bad input is one line and exit status 2."""

from __future__ import annotations

import subprocess
import sys

import imageio.v3 as iio
import pytest
import torch
from safetensors.torch import load_file

from cinetune.io import read_video


def run(*args):
    return subprocess.run([sys.executable, "-m", "cinetune.cli", *args], capture_output=True, text=True, timeout=900)


def _portrait(identity: int, path):
    from cinetune.toynets import reference_portrait

    iio.imwrite(path, reference_portrait(identity).video[0])
    return str(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ingredients-cli")
    cache = f"data.cache_path={root / 'cache.safetensors'}"
    r = run("train", "ingredients", "--preset", "tiny-ingredients", f"output_dir={root / 's1'}", cache)
    assert r.returncode == 0, r.stderr[-2000:]
    for extra in (("--stop-after", "2"), ("--resume",)):  # stage 1 stopped part-way and resumed, beside s1
        r = run("train", "ingredients", "--preset", "tiny-ingredients", f"output_dir={root / 's1-resumed'}", cache,
                *extra)
        assert r.returncode == 0, r.stderr[-2000:]
    r = run("train", "ingredients", "--preset", "tiny-ingredients", "--stage", "2", "--stage1", str(root / "s1"),
            f"output_dir={root / 's2'}", cache, "--stop-after", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    r = run("train", "ingredients", "--preset", "tiny-ingredients", "--stage", "2", "--stage1", str(root / "s1"),
            f"output_dir={root / 's2'}", cache, "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    r = run("train", "ingredients", "--preset", "tiny-ingredients", "--stage", "2", "--stage1", str(root / "s1"),
            f"output_dir={root / 's2-straight'}", cache)
    assert r.returncode == 0, r.stderr[-2000:]
    return root


def _module(run_dir):
    return load_file(run_dir / "final" / "ingredients" / "module" / "diffusion_pytorch_model.safetensors")


def test_stage_one_resumes_bit_identically(runs):
    """Stage 1 draws a dropout mode per sample: a resumed run must draw the same ones."""
    a, b = _module(runs / "s1-resumed"), _module(runs / "s1")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert len((runs / "s1-resumed" / "metrics.csv").read_text().splitlines()) > 1


def test_stage_two_resumes_bit_identically_and_trains_only_the_router(runs):
    a, b = _module(runs / "s2"), _module(runs / "s2-straight")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    s1 = _module(runs / "s1")
    moved = {k for k in a if not torch.equal(a[k], s1[k])}
    assert moved and all(any(f".{r}" in k for r in ("f.", "g.", "aggregate.", "norm_h.", "norm_t.")) for k in moved)
    metrics = (runs / "s2" / "metrics.csv").read_text()
    assert "routing" in metrics


def test_generate_with_references(runs, tmp_path):
    faces = [_portrait(i, tmp_path / f"face{i}.png") for i in (2, 7)]
    for refs in (faces[:1], faces):
        out = tmp_path / f"v{len(refs)}.gif"
        args = [a for f in refs for a in ("--identity", f)]
        r = run("generate", "--model", "toy-small", "--identities", str(runs / "s2"), *args, "--prompt", "people talk",
                "--steps", "2", "--frames", "5", "--out", str(out))
        assert r.returncode == 0, r.stderr[-2000:]
        assert read_video(str(out))[0].shape[0] == 5


def _one_line_error(r, needle):
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("cinetune: error:"), r.stderr
    assert needle in lines[0], lines[0]


def test_bad_input(runs, tmp_path):
    blank = tmp_path / "blank.png"
    iio.imwrite(blank, (255 * torch.ones(64, 64, 3, dtype=torch.uint8)).numpy())
    _one_line_error(run("generate", "--identities", str(runs / "s2"), "--identity", str(blank), "--prompt", "x",
                        "--model", "toy-small", "--steps", "1", "--out", str(tmp_path / "a.gif")), "no face found")
    _one_line_error(run("generate", "--identities", str(runs / "s2"), "--prompt", "x", "--model", "toy-small",
                        "--steps", "1", "--out", str(tmp_path / "a.gif")), "needs reference faces")
    _one_line_error(run("generate", "--identity", str(blank), "--prompt", "x", "--out", str(tmp_path / "a.gif")),
                    "--identities MODEL")
    _one_line_error(run("train", "ingredients", "--preset", "tiny-ingredients", "--stage", "2"), "needs ingredients.init")
    _one_line_error(run("train", "ingredients", "--preset", "tiny-ingredients", "ingredients.routing=sometimes"),
                    "hard or soft")


def test_stage_zero_is_first_frame_pretraining_and_initialises_stage_one(tmp_path):
    """The T2V-vs-I2V ablation's I2V branch: stage 0 trains only the input slot (and the LoRA) to read the clip's own
    first latent frame; a stage 1 started from it continues that model."""
    from cinetune.methods.ingredients.task import IngredientsTask
    from cinetune.training import preset_config

    cache = tmp_path / "cache.safetensors"
    task = IngredientsTask(preset_config("tiny-ingredients", {"output_dir": str(tmp_path / "t"), "data": {
        "cache_path": str(cache)}, "ingredients": {"stage": 0}}), torch.device("cpu"))
    own = {id(p) for p in task.att.trainable_parameters()}
    assert {n for n, p in task.ing.module.named_parameters() if id(p) in own} == {"slot"}
    assert all("lora_" in n for n, p in task.backbone.transformer.named_parameters() if id(p) in own)
    batch = task.batch(0, 0, 0, 1)
    assert torch.equal(batch["cond"]["canvas"], batch["x0"][:, :, :1]) and not batch["keep"]["local"].any()
    del task
    r = run("train", "ingredients", "--preset", "tiny-ingredients", "--stage", "0", f"output_dir={tmp_path / 's0'}",
            f"data.cache_path={cache}")
    assert r.returncode == 0, r.stderr[-2000:]
    weights = "final/ingredients/module/diffusion_pytorch_model.safetensors"
    s0 = load_file(tmp_path / "s0" / weights)
    assert s0["slot"].abs().sum() > 0  # the zero-initialised slot learned to read the first frame
    r = run("train", "ingredients", "--preset", "tiny-ingredients", "--stage1", str(tmp_path / "s0"),
            f"output_dir={tmp_path / 's1'}", f"data.cache_path={cache}")
    assert r.returncode == 0, r.stderr[-2000:]
    s1 = load_file(tmp_path / "s1" / weights)
    assert any(not torch.equal(s0[k], s1[k]) for k in s0 if k.startswith("projector"))  # stage 1 trained on
    assert run("train", "ingredients", "--preset", "tiny-ingredients", "--stage", "0", "--stage1", "x",
               f"data.cache_path={cache}").returncode == 2
