"""Benchmarks: `cinetune bench <name>` measures and writes benchmarks/results/<name>.md."""

from __future__ import annotations

import statistics
import time


def median_time(fn, repeats: int, warmup: int = 1, sync=None) -> float:
    """Median wall seconds of `repeats` calls of fn() after `warmup` calls; `sync` (e.g. torch.cuda.synchronize)
    runs before each clock read."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if sync:
            sync()
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved_medians(cases: dict, repeats: int, warmup: int = 1, sync=None) -> dict[str, float]:
    """Median wall seconds per case, timed round-robin: each of `repeats` rounds runs every case once, so a change of
    load on a shared machine lands on all cases alike instead of on whichever ran during it (timing one case after
    the other gave identical computations 4x apart). A case is a context-manager factory; the value it enters with is
    the function timed, so set-up such as attaching an adapter stays off the clock."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(warmup + repeats):
        for name, case in cases.items():
            with case() as fn:
                if sync:
                    sync()
                t0 = time.perf_counter()
                fn()
                if sync:
                    sync()
                if r >= warmup:
                    times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}
