"""Model-card lines of a trained Ingredients model."""

from __future__ import annotations


def card(cfg: dict) -> tuple[str, str]:
    c = cfg["ingredients"]
    stage = {0: " --stage 0", 1: f" --stage1 {c['init']}" if c["init"] else "",
             2: f" --stage 2 --stage1 {c['init']}"}[c["stage"]]
    recipe = f"cinetune train ingredients --preset {cfg.get('preset') or 'toy-ingredients-1'}{stage}"
    samples = (f"Stage {c['stage']} ({c['routing']} routing, routing loss {c['routing_loss']}, {c['supervision']} "
               "supervision). Tables: `cinetune bench ingredients`.")
    return recipe, samples
