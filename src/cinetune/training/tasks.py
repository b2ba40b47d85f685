"""Which task class trains a config's `task`: the base tasks here, the feature networks', and every registered
method's (methods.registry)."""

from __future__ import annotations

import torch

from ..errors import CinetuneError
from .config import TrainConfig
from .task import Task

BASE_TASKS = {"dit": "cinetune.training.dit:DiTTask", "vae": "cinetune.training.vae:VAETask",
              "video-encoder": "cinetune.training.feature_tasks:VideoEncoderTask",
              "identity-encoder": "cinetune.training.feature_tasks:IdentityEncoderTask",
              "annotator": "cinetune.training.feature_tasks:AnnotatorTask"}


def task_class(name: str) -> type[Task]:
    from ..methods.registry import _resolve, extra_tasks, methods

    if name in BASE_TASKS:
        return _resolve(BASE_TASKS[name])
    if name in methods():
        return methods()[name].task_class()
    if name in extra_tasks():
        return _resolve(extra_tasks()[name][0])
    raise CinetuneError(f"unknown task {name!r}; known: {', '.join(task_names())}")


def task_names() -> list[str]:
    from ..methods.registry import extra_tasks, methods

    return [*BASE_TASKS, *methods(), *extra_tasks()]


def make_task(cfg: TrainConfig, device: torch.device) -> Task:
    return task_class(cfg.task)(cfg, device)
