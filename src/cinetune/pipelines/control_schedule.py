"""Per-condition control strength and guidance window: each condition kind has its own scale and [start, end) (the
fraction of denoising steps where it acts), as diffusers' multi-ControlNet pipelines take one value per ControlNet.
A plain number applies to every kind."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import CinetuneError

Value = float | dict[str, float]


def _per_kind(value: Value, kinds: list[str], default: float, name: str) -> dict[str, float]:
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(kinds))
        if unknown:
            raise CinetuneError(f"{name} names {', '.join(unknown)}, which is not among the given conditions "
                                f"({', '.join(kinds) or 'none'})")
        out = {k: float(value.get(k, default)) for k in kinds}
    else:
        out = {k: float(value) for k in kinds}
    bad = [k for k, v in out.items() if not math.isfinite(v)]
    if bad:
        raise CinetuneError(f"{name} for {bad[0]} is not a finite number")
    return out


@dataclass(frozen=True)
class ControlSchedule:
    """scale / start / end per condition kind; `weights(fraction)` is each kind's strength at that point of sampling
    (its scale inside its window, 0 outside)."""

    scale: dict[str, float]
    start: dict[str, float]
    end: dict[str, float]

    @classmethod
    def of(cls, kinds: list[str], scale: Value = 1.0, start: Value = 0.0, end: Value = 1.0) -> "ControlSchedule":
        s = cls(_per_kind(scale, kinds, 1.0, "control_scale"), _per_kind(start, kinds, 0.0, "control_start"),
                _per_kind(end, kinds, 1.0, "control_end"))
        for k in kinds:
            if not 0.0 <= s.start[k] < s.end[k] <= 1.0:
                raise CinetuneError(f"need 0 <= control_start < control_end <= 1 for {k}, got {s.start[k]}, {s.end[k]}")
        return s

    def weights(self, fraction: float) -> dict[str, float]:
        return {k: (v if self.start[k] <= fraction < self.end[k] else 0.0) for k, v in self.scale.items()}

    def uniform(self, kinds: list[str] | None = None) -> bool:
        """Every kind (of `kinds`, default all) has the same scale and window: what a method that takes its
        conditions together can do."""
        kinds = self.scale if kinds is None else kinds
        return len({(self.scale[k], self.start[k], self.end[k]) for k in kinds}) <= 1


def split_weights(weights: dict[str, float]) -> tuple[float, dict[str, float]]:
    """Per-kind strengths -> (the adapter's overall strength, each kind's share of it in [0, 1]): the strongest kind
    sets the adapter's scale, the others are weighed against it at its input (0 = the kind left out)."""
    top = max(weights.values(), key=abs, default=0.0)
    return top, {k: (v / top if top else 0.0) for k, v in weights.items()}
