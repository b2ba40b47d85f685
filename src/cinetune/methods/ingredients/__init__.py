"""Ingredients: several reference identities kept apart and consistent in one video (facial extractor, multi-scale
Q-former projector, ID router with the routing loss, two-stage training)."""

from ..registry import Flag, Method
from .config import PRESETS, IngredientsConfig

METHOD = Method(
    name="ingredients", summary="several reference identities in one video: extractor, Q-former projector, ID router",
    section="ingredients", config=IngredientsConfig, presets=PRESETS, default_preset="toy-ingredients-1",
    manifest="cinetune_ingredients.json", model="cinetune.methods.ingredients.model:IngredientsModel",
    task="cinetune.methods.ingredients.task:IngredientsTask",
    benches={"ingredients": "cinetune.methods.ingredients.bench"},
    flags=(Flag("--stage", "ingredients.stage", "1: facial embedding alignment, 2: router fine-tuning (0: "
                "first-frame pre-training, an I2V-style init for stage 1)"),
           Flag("--stage1", "ingredients.init", "stage 2: the stage-1 model; stage 1: a stage-0 model (a run or a "
                "saved directory)")),
    card="cinetune.methods.ingredients.card:card",
    contract="cinetune.methods.ingredients.contract:examples")
