"""Small networks trained on the toy world that stand in for real-scale feature extractors (I3D/CLIP, ArcFace,
MiDaS/OpenPose/segmenters): trained by project recipes, shipped under `cinetune/assets/`, never real-video models."""

from .annotator import ToyAnnotator, heatmap_peaks, keypoint_heatmaps, pck
from .identity_encoder import ToyIdentityEncoder, crop_faces, reference_face, reference_portrait
from .labels import GROUPS, MULTI_LABEL, prompt_labels, scene_labels
from .loading import load_toy_net
from .video_encoder import ToyVideoEncoder

__all__ = ["GROUPS", "MULTI_LABEL", "ToyAnnotator", "ToyIdentityEncoder", "ToyVideoEncoder", "crop_faces",
           "reference_face", "reference_portrait", "heatmap_peaks", "keypoint_heatmaps", "load_toy_net", "pck", "prompt_labels", "scene_labels"]
