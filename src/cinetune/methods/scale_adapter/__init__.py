"""Scale-Adapter: a small condition-tuned DiT steers a large frozen DiT through trained adapters."""

from ..registry import Flag, Method
from .config import PRESETS, ScaleConfig

METHOD = Method(
    name="scale-adapter", summary="a small conditional DiT steers a large frozen DiT through trained adapters",
    section="scale", config=ScaleConfig, presets=PRESETS, default_preset="toy-scale-adapter",
    manifest="cinetune_scale.json", model="cinetune.methods.scale_adapter.model:ScaleAdapterModel",
    task="cinetune.methods.scale_adapter.task:ScaleAdapterTask",
    benches={"scale-adapter": "cinetune.methods.scale_adapter.bench"},
    flags=(Flag("--conditions", "scale.conditions", "comma list, e.g. canny,depth,pose"),
           Flag("--large", "backbone", "the frozen large backbone (default toy-large)"),
           Flag("--small", "scale.small", "the small conditional model: a concat control adapter dir or shipped name")),
    card="cinetune.methods.scale_adapter.card:card",
    contract="cinetune.methods.scale_adapter.contract:examples",
    commands="cinetune.methods.scale_adapter.cli:add_commands")
