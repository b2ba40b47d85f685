"""Adaptive video distillation: a few-step student by DMD2 with the adaptive regression loss and temporal
regularisation, and latent frame-interpolation inference."""

from ..registry import Flag, Method
from .config import PRESETS, DistillConfig

METHOD = Method(
    name="distill", summary="a 4-step student by DMD2 + adaptive regression + temporal regularisation",
    section="distill", config=DistillConfig, presets=PRESETS, default_preset="toy-large-4step",
    manifest="cinetune_distill.json", model="cinetune.methods.distill.model:StudentModel",
    task="cinetune.methods.distill.task:DistillTask",
    benches={"distill": "cinetune.methods.distill.bench", "distill-speed": "cinetune.methods.distill.speed_bench"},
    flags=(Flag("--teacher", "init", "the teacher's weights: a shipped model's name or a transformer directory"),),
    card="cinetune.methods.distill.card:card",
    contract="cinetune.methods.distill.contract:examples",
    commands="cinetune.methods.distill.cli:add_commands",
    extra_tasks={"interpolator": ("cinetune.methods.distill.interpolator_task:InterpolatorTask", "toy-interpolator",
                                  "the latent frame interpolator of few-step sampling (paper Sec. 3.4)")})
