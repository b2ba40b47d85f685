"""cinetune: controllable, personalised and fast video diffusion transformers without fine-tuning the big model."""

import os

# Nothing in cinetune may reach for the network: the hub clients (transformers, diffusers) look locally only.
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")

__version__ = "0.1.0"


def load_pipeline(model: str = "toy-large", device: str | None = None, dtype=None):
    """Text-to-video pipeline for a preset name or a diffusers-format directory (mirrors `cinetune generate`)."""
    from .pipelines import TextToVideoPipeline

    return TextToVideoPipeline.from_pretrained(model, device=device, dtype=dtype)


__all__ = ["load_pipeline", "__version__"]
