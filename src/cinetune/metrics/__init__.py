"""Metrics: each a small pure function, plus `evaluate` for sets of videos. Feature networks are pluggable
(toy-trained by default, local real-scale weights when given)."""

from .colour import oversaturation, saturation_stats
from .condition import depth_error, edge_f1, miou, normal_error, pose_pck
from .evaluate import METRICS, EvalConfig, adherence, evaluate, markdown_table
from .fidelity import psnr, ssim
from .frechet import frechet_distance
from .identity import greedy_match, identity_similarity
from .instances import instance_events, instance_preservation
from .temporal import chunk_flicker, dynamic_degree, first_frame_jump, temporal_consistency

__all__ = ["METRICS", "EvalConfig", "adherence", "chunk_flicker", "depth_error", "dynamic_degree", "edge_f1", "evaluate",
           "first_frame_jump", "frechet_distance", "greedy_match", "identity_similarity", "instance_events", "instance_preservation",
           "markdown_table", "miou", "normal_error", "oversaturation", "pose_pck", "psnr", "saturation_stats", "ssim",
           "temporal_consistency"]
