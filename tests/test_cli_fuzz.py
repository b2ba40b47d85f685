"""The bounded fuzz run over every subcommand and option (tests/cli_fuzz.py; `make fuzz` runs every value)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.timeout(1500)  # about 130 cases: minutes on a busy 2-core machine, beyond the suite's per-test limit
def test_every_option_keeps_the_bad_input_contract():
    from tests.cli_fuzz import commands

    root = Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, "-m", "tests.cli_fuzz", "--seed", "0"], cwd=root, capture_output=True,
                       text=True, timeout=1200, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["cases"] >= sum(len(a) for a in commands().values())  # one case per option at least
    assert not report["failures"], json.dumps(report["failures"][:5], indent=1, ensure_ascii=False)


def test_the_fuzzer_sees_a_broken_contract(tmp_path, monkeypatch):
    """The checks can fail: a command that exits 1, prints two lines or writes outside its output is caught."""
    import cinetune.cli as cli
    from tests.cli_fuzz import run_case

    def bad(argv):
        os.write(2, b"warning: something\ncinetune: error: x\n")  # fd 2: what the fuzzer captures
        (tmp_path / "stray").write_text("x")
        return 2

    monkeypatch.setattr(cli, "main", bad)
    got = run_case(["presets"], (tmp_path / "out",), [tmp_path], 10)
    assert got and "2 stderr lines" in got["problems"] and any("changed outside" in p for p in got["problems"])
