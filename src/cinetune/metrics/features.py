"""Pluggable feature networks behind FVD, the perceptual distance, text-video alignment and temporal consistency.

- `ToyFeatures` (default): the shipped toy video encoder, trained on toy-world attributes. Its numbers are
  meaningful for toy clips only and are named "toy-..." in reports.
- `ClipFeatures(path)`: a local transformers CLIP directory (real scale): CLIP score for alignment, CLIP image
  embeddings for temporal consistency, the mean frame embedding as the video feature (a CLIP-based Fréchet
  distance, not I3D's), and an LPIPS-form distance over the vision tower's hidden states.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CinetuneError


def _to_tensor(video: np.ndarray) -> torch.Tensor:
    """(F,H,W,3) uint8 -> (1,3,F,H,W) float in [-1,1]."""
    return torch.from_numpy(np.ascontiguousarray(video)).permute(3, 0, 1, 2)[None].float().div(127.5).sub(1.0)


def _embeds(out) -> torch.Tensor:
    """CLIP get_*_features returns a tensor (transformers 4) or an output whose pooler_output is projected (5)."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def lpips_form(fa: list[torch.Tensor], fb: list[torch.Tensor]) -> torch.Tensor:
    """LPIPS's formula with uniform layer weights (no learned linear heads, which do not exist here): per layer,
    unit-normalise features over channels, squared difference, mean over positions and channels; sum over layers.
    fa/fb: per layer (N,C,...) -> (N,)."""
    total = 0
    for a, b in zip(fa, fb):
        a, b = F.normalize(a.flatten(2), dim=1), F.normalize(b.flatten(2), dim=1)
        total = total + ((a - b) ** 2).sum(1).mean(1)
    return total


class ToyFeatures:
    name = "toy"

    def __init__(self, path: str | None = None):
        from ..toynets import load_toy_net

        self.net = load_toy_net("video_encoder", path)

    @torch.no_grad()
    def video_features(self, videos: list[np.ndarray]) -> np.ndarray:
        """(N,D) penultimate features of the toy video encoder."""
        return torch.cat([self.net(_to_tensor(v))[0] for v in videos]).numpy()

    @torch.no_grad()
    def frame_embeddings(self, video: np.ndarray) -> np.ndarray:
        return self.net.frame_embeddings(_to_tensor(video))[0].numpy()

    @torch.no_grad()
    def perceptual(self, a: np.ndarray, b: np.ndarray) -> float:
        """Toy-feature perceptual distance (LPIPS form over the encoder's three per-frame stages), frame mean."""
        return float(lpips_form(self.net.frame_features(_to_tensor(a)), self.net.frame_features(_to_tensor(b))).mean())

    @torch.no_grad()
    def alignment(self, video: np.ndarray, prompt: str) -> float:
        """Toy attribute alignment: mean probability the encoder gives each attribute the prompt states (shapes,
        object colours, motions, actions, background colour). nan when the prompt states none it can parse."""
        from ..toynets import prompt_labels

        stated = prompt_labels(prompt)
        probs = self.net.probabilities(_to_tensor(video))
        vals = [float(probs[g][0, i]) for g, idx in stated.items() for i in idx]
        return float(np.mean(vals)) if vals else float("nan")


class ClipFeatures:
    name = "clip"

    def __init__(self, path: str):
        from pathlib import Path

        from transformers import CLIPModel, CLIPProcessor

        if not (Path(path).expanduser() / "config.json").is_file():  # a local directory only: nothing is downloaded
            raise CinetuneError(f"--features {path}: not a local CLIP directory (no config.json); use toy, toy:DIR or "
                                "a CLIP model saved with save_pretrained")
        try:
            self.model = CLIPModel.from_pretrained(path, use_safetensors=True).eval()
            self.processor = CLIPProcessor.from_pretrained(path)
        except (OSError, ValueError) as e:
            raise CinetuneError(f"cannot load a CLIP model from {path}: {str(e).splitlines()[0]}") from None

    def _pixels(self, video: np.ndarray) -> torch.Tensor:
        return self.processor(images=list(np.asarray(video)), return_tensors="pt")["pixel_values"]

    @torch.no_grad()
    def frame_embeddings(self, video: np.ndarray) -> np.ndarray:
        return F.normalize(_embeds(self.model.get_image_features(pixel_values=self._pixels(video))), dim=-1).numpy()

    @torch.no_grad()
    def video_features(self, videos: list[np.ndarray]) -> np.ndarray:
        return np.stack([self.frame_embeddings(v).mean(0) for v in videos])

    @torch.no_grad()
    def perceptual(self, a: np.ndarray, b: np.ndarray) -> float:
        def states(v):
            hs = self.model.vision_model(pixel_values=self._pixels(v), output_hidden_states=True).hidden_states
            return [h.transpose(1, 2) for h in hs[1:]]  # (N,C,tokens) per layer

        return float(lpips_form(states(a), states(b)).mean())

    @torch.no_grad()
    def alignment(self, video: np.ndarray, prompt: str) -> float:
        """CLIP score: 100 * max(cos(image, text), 0), mean over frames."""
        text = self.processor(text=[prompt], return_tensors="pt", padding=True, truncation=True)
        t = F.normalize(_embeds(self.model.get_text_features(**text)), dim=-1)
        img = torch.from_numpy(self.frame_embeddings(video))
        return float((100 * (img @ t.T).clamp_min(0)).mean())


def load_features(spec: str = "toy"):
    """'toy' (shipped toy video encoder), 'toy:PATH' (another toy encoder export) or a local CLIP directory."""
    if spec == "toy":
        return ToyFeatures()
    if spec.startswith("toy:"):
        return ToyFeatures(spec[4:])
    return ClipFeatures(spec)
