"""cinetune: controllable, personalised and fast video diffusion transformers without fine-tuning the big model."""

__version__ = "0.1.0"
