"""Pipelines: text-to-video (controlled, scale-adapted, identity and few-step pipelines build on it)."""

from .controlled import ControlledPipeline, fit_condition
from .text_to_video import TextToVideoPipeline, VideoOutput, to_uint8

__all__ = ["ControlledPipeline", "TextToVideoPipeline", "VideoOutput", "fit_condition", "to_uint8"]
