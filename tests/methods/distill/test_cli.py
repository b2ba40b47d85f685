"""The distillation commands from the CLI on tiny runs: train a student on the shipped toy-small, train an
interpolator, combine them, generate at the student's steps with and without interpolation, export a LoRA; bad input
is one line and exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cinetune.io import read_video


def run(*args, cwd=None):
    r = subprocess.run([sys.executable, "-m", "cinetune.cli", *args], capture_output=True, text=True, timeout=600,
                       cwd=cwd)
    return r


def _one_line_error(r, needle: str):
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("cinetune: error:"), r.stderr
    assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill-cli")
    r = run("train", "distill", "--preset", "tiny-distill", "--teacher", "toy-small", f"output_dir={root / 'student'}",
            "steps=2")
    assert r.returncode == 0, r.stderr[-2000:]
    r = run("train", "interpolator", "--preset", "tiny-interpolator", f"output_dir={root / 'interp'}")
    assert r.returncode == 0, r.stderr[-2000:]
    r = run("distill", "add-interpolator", "--student", str(root / "student"), "--interpolator", str(root / "interp"),
            "--out", str(root / "with-interp"))
    assert r.returncode == 0, r.stderr[-2000:]
    return root


def test_generate_export_and_interpolate(runs):
    for extra in ([], ["--interpolate"]):
        out = runs / f"video{len(extra)}.gif"
        r = run("generate", "--model", str(runs / "with-interp"), "--prompt", "a red circle", "--out", str(out),
                "--frames", "9", "--height", "32", "--width", "32", *extra)
        assert r.returncode == 0, r.stderr[-2000:]
        assert read_video(str(out))[0].shape == (9, 32, 32, 3)
    r = run("distill", "export-lora", "--student", str(runs / "student"), "--rank", "4", "--out", str(runs / "lora"))
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((runs / "lora" / "lora_report.json").read_text())
    assert report["rank"] == 4 and 0 < report["kept"] <= 1 and (runs / "lora" / "pytorch_lora_weights.safetensors").is_file()


def test_bad_input(runs, tmp_path):
    student = str(runs / "student")
    _one_line_error(run("generate", "--model", student, "--prompt", "x", "--steps", "9", "--out", str(tmp_path / "a.gif")),
                    "1 to 4 steps")
    _one_line_error(run("generate", "--model", student, "--prompt", "x", "--interpolate", "--out",
                        str(tmp_path / "a.gif")), "no frame interpolator")
    _one_line_error(run("generate", "--prompt", "x", "--interpolate", "--out", str(tmp_path / "a.gif")),
                    "needs a distilled student")
    _one_line_error(run("distill", "export-lora", "--student", student, "--rank", "0", "--out", str(tmp_path / "l")),
                    "rank must be >= 1")
    _one_line_error(run("distill", "add-interpolator", "--student", student, "--interpolator", str(tmp_path),
                        "--out", str(tmp_path / "s")), "no trained interpolator")
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "cinetune_distill.json").write_text("{not json")
    _one_line_error(run("generate", "--model", str(bad), "--prompt", "x", "--out", str(tmp_path / "a.gif")),
                    "invalid JSON")
    _one_line_error(run("train", "distill", "--preset", "tiny-distill", "distill.student_timesteps=500,900"),
                    "strictly decreasing")
    _one_line_error(run("train", "distill", "--preset", "tiny-distill", "distill.regression=sometimes"),
                    "off, plain or adaptive")
