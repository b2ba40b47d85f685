"""Model-card lines of a trained Scale-Adapter."""

from __future__ import annotations


def card(cfg: dict) -> tuple[str, str]:
    """(recipe command, what samples.gif shows) for the run config `cfg`."""
    c = cfg["scale"]
    recipe = (f"cinetune train scale-adapter --preset {cfg.get('preset') or 'toy-scale-adapter'} --large "
              f"{cfg['backbone']} --small {c['small']} --conditions {c['conditions']}")
    samples = (f"Scale-adapted samples on held-out clips ({' | '.join(c['conditions'].split(','))} | generated, "
               f"{cfg['validation_steps']} steps): `samples.gif`. Tables: `cinetune bench scale-adapter`.")
    return recipe, samples
