"""`cinetune bench ui`: the wall time of one toy generation through the served UI vs the command line.

Three ways to the same video (toy-large, 17x64x64, 25 steps, guidance 5, seed 0), timed round-robin
(`interleaved_medians`): `cinetune generate` as a new process (what a user waits for at the shell: imports, model
load, generation, file), the UI's engine in this process (the model already loaded), and a request to the served page
over HTTP through gradio_client (queue, upload of the result, what a click costs)."""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ..io import write_text
from . import interleaved_medians

PROMPT = "A red circle moves to the right on a plain navy backdrop."


def run(out: Path, quick: bool = False) -> Path:
    from gradio_client import Client

    from ..ui import Request, Studio
    from ..ui.app import MODEL_SCHEDULER, WINDOW_HEADERS, launch

    steps, repeats = (4, 2) if quick else (25, 5)
    threads = torch.get_num_threads()
    work = Path(tempfile.mkdtemp(prefix="cinetune-bench-ui-"))
    t0 = time.perf_counter()
    studio = Studio("toy-large", device="cpu", out=work / "ui")
    load = time.perf_counter() - t0
    app, url = launch(studio, "127.0.0.1", _free_port())
    try:
        client = Client(url, verbose=False)
        http_args = [PROMPT, "", steps, 5.0, 0, 17, 64, 64, "none", None, [], "auto", None,
                     {"headers": WINDOW_HEADERS, "data": []}, "none", None, "none", False, False, MODEL_SCHEDULER]
        cli = [sys.executable, "-m", "cinetune.cli", "generate", "--model", "toy-large", "--prompt", PROMPT,
               "--steps", str(steps), "--seed", "0", "--device", "cpu", "--out", str(work / "cli.mp4")]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        calls = {
            "`cinetune generate` (new process)": lambda: subprocess.run(cli, env=env, check=True, capture_output=True),
            "UI engine, in process (model loaded)": lambda: studio.generate(Request(PROMPT, steps=steps)),
            "UI request over HTTP (served page)": lambda: client.predict(*http_args, api_name="/generate"),
        }
        cases = {name: functools.partial(contextlib.nullcontext, fn) for name, fn in calls.items()}  # no set-up
        med = interleaved_medians(cases, repeats)
    finally:
        app.close()
    base = med["`cinetune generate` (new process)"]
    lines = ["# The UI vs the command line", "",
             f"`cinetune bench ui{' --quick' if quick else ''}`: toy-large, 17x64x64, {steps} steps, guidance 5, "
             f"seed 0, CPU, torch threads {threads}; median of {repeats} interleaved rounds (one warm-up). The UI "
             f"loads its model once, at start ({load:.1f} s here); the command line loads it on every call.", "",
             "| way | wall s | vs the command line |", "|---|---:|---:|"]
    lines += [f"| {name} | {t:.2f} | {t / base:.2f}x |" for name, t in med.items()]
    path = out / "ui.md"
    write_text(path, "\n".join(lines) + "\n")
    return path


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
