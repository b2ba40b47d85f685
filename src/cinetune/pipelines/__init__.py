"""Pipelines: text-to-video (controlled, scale-adapted, identity and few-step pipelines build on it)."""

from .text_to_video import TextToVideoPipeline, VideoOutput, to_uint8

__all__ = ["TextToVideoPipeline", "VideoOutput", "to_uint8"]
