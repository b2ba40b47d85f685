"""`cinetune bench distill-speed`: the shipped 4-step student's speed-ups (paper Table 2's time column, Sec. 3.4's
interpolation), timed interleaved against the teacher, without the distillation bench's training runs."""

from __future__ import annotations

import time
from pathlib import Path

from ...io import write_text
from .bench import speed, speed_lines, speed_targets


def run(out: Path, quick: bool = False) -> Path:
    from ...methods.registry import load_adapter
    from ...pipelines import TextToVideoPipeline

    t0, out = time.perf_counter(), Path(out)
    teacher_steps, repeats = (10, 2) if quick else (50, 7)
    base = TextToVideoPipeline.from_pretrained("toy-large", device="cpu")
    student = load_adapter("toy-large-4step")
    times = speed(base, student, teacher_steps, repeats)
    lines = ["# Speed of the shipped 4-step student", "",
             f"`cinetune bench distill-speed{' --quick' if quick else ''}`: the shipped `toy-large-4step` (with its "
             f"frame interpolator) against its teacher, the shipped toy-large, at {teacher_steps} steps x CFG and at "
             "4 steps x CFG. Denoise: the sampling loop alone (prompt embedding given, no VAE decoding), as the paper "
             "counts; whole: prompt to pixels.", "", *speed_lines(times, repeats), "", "| target | measured | met |",
             "|---|---|---|", *speed_targets(times, teacher_steps), "", f"Wall time {time.perf_counter() - t0:.0f} s.", ""]
    path = out / "distill-speed.md"
    write_text(path, "\n".join(lines))
    return path
