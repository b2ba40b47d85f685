"""One way to save a matplotlib figure: headless backend, written atomically, closed afterwards."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def figure(path: str | Path, *subplots: int, figsize: tuple[float, float] = (6, 3.5), dpi: int = 90) -> Iterator:
    """with figure(path, 1, 3, figsize=(10, 3)) as (fig, axes): draw; on exit the PNG replaces `path` in one rename."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    fig, axes = plt.subplots(*(subplots or (1, 1)), figsize=figsize, dpi=dpi)
    try:
        yield fig, axes
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
