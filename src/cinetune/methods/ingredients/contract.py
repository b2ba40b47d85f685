"""A tiny Ingredients model for the shared contract test: two identities on a random toy-small."""

from __future__ import annotations

import torch

from .model import IngredientsModel


def _perturb(model, att) -> None:
    with torch.no_grad():
        for inj in model.module.injectors.values():
            inj.to_out.weight.normal_(0, 0.05)
        model.module.slot.normal_(0, 0.05)


def examples(make_backbone) -> list[dict]:
    b = make_backbone("toy-small")
    torch.manual_seed(0)
    model = IngredientsModel.new(b, interval=2, num_queries=2, id_tokens=1, projector_dim=16, depth=1, lora_rank=2)
    faces = torch.rand(2, 2, 3, 24, 24, generator=torch.Generator().manual_seed(5)) * 2 - 1
    return [dict(name="ingredients", model=model, backbone=b, identity=True, perturb=_perturb,
                 conditions=model.references(b, faces, 64, 64))]
