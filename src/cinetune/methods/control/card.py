"""Model-card lines of a trained control adapter."""

from __future__ import annotations


def card(cfg: dict) -> tuple[str, str]:
    """(recipe command, what samples.gif shows) for the run config `cfg`."""
    c = cfg["control"]
    recipe = (f"cinetune train control --preset {cfg.get('preset') or 'toy-control'} --method {c['method']} "
              f"--conditions {c['conditions']}")
    samples = (f"Controlled samples on held-out clips ({' | '.join(c['conditions'].split(','))} | generated, "
               f"{cfg['validation_steps']} steps): `samples.gif`. Adherence, quality and latency against the other "
               "methods: `cinetune bench control` (benchmarks/results/control.md).")
    return recipe, samples
