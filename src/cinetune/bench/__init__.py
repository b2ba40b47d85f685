"""Benchmarks: `cinetune bench <name>` measures and writes benchmarks/results/<name>.md."""

from __future__ import annotations

import statistics
import time


def median_time(fn, repeats: int, warmup: int = 1, sync=None) -> float:
    """Median wall seconds of `repeats` calls of fn() after `warmup` calls; `sync` (e.g. torch.cuda.synchronize)
    runs before each clock read."""
    for _ in range(warmup):
        fn()
    return statistics.median([_timed(fn, sync) for _ in range(repeats)])


def _timed(fn, sync=None) -> float:
    """Wall seconds of one fn() call, `sync` run before each clock read."""
    if sync:
        sync()
    t0 = time.perf_counter()
    fn()
    if sync:
        sync()
    return time.perf_counter() - t0


def interleaved_medians(cases: dict, repeats: int, warmup: int = 1, sync=None) -> dict[str, float]:
    """Median wall seconds per case, timed round-robin: each of `repeats` rounds runs every case once, so a change of
    load on a shared machine lands on all cases alike instead of on whichever ran during it (timing one case after
    the other gave identical computations 4x apart). A case is a context-manager factory; the value it enters with is
    the function timed, so set-up such as attaching an adapter stays off the clock."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(warmup + repeats):
        for name, case in cases.items():
            with case() as fn:
                t = _timed(fn, sync)
            if r >= warmup:
                times[name].append(t)
    return {name: statistics.median(t) for name, t in times.items()}
