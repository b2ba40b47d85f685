"""Backbones: preset registry, local-directory loading, text encoders, latent codec and the VideoDiT view."""

from .codec import LatentCodec
from .loading import Backbone, load_backbone, load_directory, save_backbone
from .presets import PRESETS, BackbonePreset, get_preset, models_dir
from .text import TextEncoder, minilm_encoder
from .view import VideoDiTView

__all__ = ["PRESETS", "Backbone", "BackbonePreset", "LatentCodec", "TextEncoder", "VideoDiTView", "get_preset",
           "load_backbone", "load_directory", "minilm_encoder", "models_dir", "save_backbone"]
