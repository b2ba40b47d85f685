"""`cinetune bench NAME --jobs N`: a training bench's independent chains run on N processes, never sharing a run."""

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from cinetune.bench import harness
from cinetune.methods.control import bench as control_bench
from cinetune.methods.ingredients import bench as ingredients_bench
from cinetune.methods.scale_adapter import bench as scale_bench


def _write_pid(path: Path) -> None:
    path.write_text(str(os.getpid()))


def test_chains_run_on_separate_processes(tmp_path):
    chains = [partial(_write_pid, tmp_path / f"{i}.pid") for i in range(3)]
    harness.train_chains(chains, jobs=2)
    pids = {(tmp_path / f"{i}.pid").read_text() for i in range(3)}
    assert len(pids) >= 2 and str(os.getpid()) not in pids


def _fail() -> None:
    raise ValueError("chain failed")


def test_a_failing_chain_is_raised():
    with pytest.raises(ValueError, match="chain failed"):
        harness.train_chains([_fail], jobs=2)


@pytest.mark.parametrize("module, expected", [
    (control_bench, {"controlnext", "controlnext-code", "controlnext-zero", "controlnext-none", "dit-controlnet",
                     "concat"}),
    (scale_bench, {"scale-adapter", "dit-controlnet", "controlnext-zero", "concat", "without-MCE",
                   "half-the-adapters", "count-2", "count-4"}),
    (ingredients_bench, {"stage1", "ingredients-at-the-bench-budget", "no-routing-loss", "mse-routing-loss",
                         "box-supervision", "stage1-canvas-after", "canvas-after", "stage0-i2v", "stage1-i2v", "i2v"}),
])
def test_each_run_belongs_to_exactly_one_chain(module, expected, monkeypatch):
    """The runs the full bench trains, each in one chain only (two processes never train one directory)."""
    owner = {}
    for i, chain in enumerate(module.chains(quick=False)):
        trained = []
        for m in (control_bench, scale_bench, ingredients_bench):  # Scale-Adapter baselines train via control
            monkeypatch.setattr(m, "train_or_reuse", lambda cfg: trained.append(cfg.output_dir) or Path(cfg.output_dir))
        chain()
        for d in trained:
            assert owner.setdefault(d, i) == i, f"{d} is trained by two chains"
    assert {Path(d).name for d in owner} == expected


def test_jobs_on_a_bench_that_trains_nothing_is_one_line_and_status_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "cinetune.cli", "bench", "text-features", "--out", str(tmp_path),
                        "--jobs", "2"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--jobs" in r.stderr
    assert not any(tmp_path.iterdir())
