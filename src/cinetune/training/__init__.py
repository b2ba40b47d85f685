"""Training: the shared accelerate trainer, run configs and presets, objectives, checkpoints."""

from .config import PRESETS, DataConfig, OptimConfig, TrainConfig, preset_config
from .trainer import train

__all__ = ["PRESETS", "DataConfig", "OptimConfig", "TrainConfig", "preset_config", "train"]
