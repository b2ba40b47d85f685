"""Pipelines: text-to-video, and the adapted pipeline that runs any registered method's attachments on it."""

from .adapted import AdaptedPipeline, ControlledPipeline, fit_condition
from .text_to_video import TextToVideoPipeline, VideoOutput, to_uint8

__all__ = ["AdaptedPipeline", "ControlledPipeline", "TextToVideoPipeline", "VideoOutput", "fit_condition", "to_uint8"]
