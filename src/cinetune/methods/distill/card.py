"""Model-card lines of a distilled student."""

from __future__ import annotations


def card(cfg: dict) -> tuple[str, str]:
    """(recipe command, what samples.gif shows) for the run config `cfg`."""
    c = cfg["distill"]
    recipe = f"cinetune train distill --preset {cfg.get('preset') or 'toy-large-4step'} --teacher {cfg['init']}"
    samples = (f"Held-out prompts, top row the teacher ({c['teacher_steps']} steps, guidance {c['guidance']}), bottom "
               f"row the student ({len(c['student_timesteps'].split(','))} steps, no guidance): `samples.gif`. "
               "Tables: `cinetune bench distill`.")
    return recipe, samples
