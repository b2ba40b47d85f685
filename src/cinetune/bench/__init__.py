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
