"""Text-to-video sampling: prompt (or embeddings) -> flow-matching / scheduler sampling with CFG -> VAE decode."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..backbones import Backbone, load_backbone
from ..errors import CinetuneError

# model_fn(latents (B,C,F,H,W), timestep (B,), encoder_hidden_states (B,L,D), step_index) -> prediction like latents
ModelFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]


@dataclass
class VideoOutput:
    videos: np.ndarray  # (B, F, H, W, 3) uint8
    latents: torch.Tensor  # (B, C, F', H', W') final latents, normalised


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """(B,3,F,H,W) in [-1,1] -> (B,F,H,W,3) uint8."""
    v = ((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return v.permute(0, 2, 3, 4, 1).cpu().numpy()


class TextToVideoPipeline:
    """One pipeline for toy presets and real diffusers directories (Wan and CogVideoX)."""

    def __init__(self, backbone: Backbone, device: str | torch.device = "cpu"):
        self.backbone, self.device = backbone, torch.device(device)
        backbone.to(self.device)

    @classmethod
    def from_pretrained(cls, model: str, device: str | torch.device | None = None,
                        dtype: torch.dtype | None = None) -> "TextToVideoPipeline":
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        backbone = load_backbone(model)
        if dtype is not None:
            backbone.transformer.to(dtype=dtype)
        return cls(backbone, device)

    def check_size(self, frames: int, height: int, width: int) -> None:
        codec, view = self.backbone.codec, self.backbone.view
        if frames < 1 or (frames - 1) % codec.temporal:
            raise CinetuneError(f"frames must be {codec.temporal}k+1 (e.g. 17, 33), got {frames}")
        mult = codec.spatial * view.patch_size[1]
        if height < mult or width < mult or height % mult or width % mult:
            raise CinetuneError(f"height and width must be positive multiples of {mult}, got {height}x{width}")
        rope = getattr(self.backbone.transformer.config, "rope_max_seq_len", None)  # Wan: positions per axis
        grid = view.token_grid((1, 1, (frames - 1) // codec.temporal + 1, height // codec.spatial,
                                width // codec.spatial))
        if rope is not None and max(grid) > rope:
            raise CinetuneError(f"{frames} frames at {height}x{width} make a {grid[0]}x{grid[1]}x{grid[2]} token grid; "
                                f"this model's rotary positions reach {rope} per axis")

    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        return self.backbone.text_encoder(prompts).to(self.device)

    @torch.no_grad()
    def __call__(self, prompt: str | list[str] | None = None, *, prompt_embeds: torch.Tensor | None = None,
                 negative_prompt: str = "", negative_prompt_embeds: torch.Tensor | None = None,
                 frames: int | None = None, height: int | None = None, width: int | None = None, steps: int = 30,
                 guidance: float = 5.0, seed: int = 0, latents: torch.Tensor | None = None, progress: bool = True,
                 model_fn: ModelFn | None = None, decode: bool = True) -> VideoOutput:
        p = self.backbone.preset
        frames = p.frames if frames is None else frames
        height = p.height if height is None else height
        width = p.width if width is None else width
        self.check_size(frames, height, width)
        if steps < 1:
            raise CinetuneError(f"steps must be >= 1, got {steps}")
        if prompt_embeds is None:
            if prompt is None:
                raise CinetuneError("give a prompt or prompt_embeds")
            prompts = [prompt] if isinstance(prompt, str) else list(prompt)
            prompt_embeds = self.encode_prompt(prompts)
        prompt_embeds = prompt_embeds.to(self.device)
        B = prompt_embeds.shape[0]
        cfg = guidance > 1.0
        if cfg:
            if negative_prompt_embeds is None:
                negative_prompt_embeds = self.encode_prompt([negative_prompt])
            negative_prompt_embeds = negative_prompt_embeds.to(self.device).expand(B, -1, -1)
            embeds = torch.cat([negative_prompt_embeds, prompt_embeds])
        else:
            embeds = prompt_embeds
        shape = (B, *self.backbone.codec.latent_shape(frames, height, width))
        if latents is None:
            gen = torch.Generator().manual_seed(seed)
            latents = torch.randn(shape, generator=gen)
        latents = latents.to(self.device, torch.float32)
        scheduler = copy.deepcopy(self.backbone.scheduler)
        scheduler.set_timesteps(steps, device=self.device)
        if hasattr(scheduler, "init_noise_sigma"):
            latents = latents * scheduler.init_noise_sigma
        view = self.backbone.view
        model_fn = model_fn or (lambda x, t, e, i: view(x, t, e))
        for i, t in enumerate(tqdm(scheduler.timesteps, desc="sampling", disable=not progress, leave=False)):
            x = torch.cat([latents, latents]) if cfg else latents
            if hasattr(scheduler, "scale_model_input"):
                x = scheduler.scale_model_input(x, t)
            pred = model_fn(x, t.expand(x.shape[0]).to(self.device), embeds, i)
            if cfg:
                uncond, cond = pred.chunk(2)
                pred = uncond + guidance * (cond - uncond)
            latents = scheduler.step(pred, t, latents, return_dict=False)[0]
        if not torch.isfinite(latents).all():
            raise CinetuneError("sampling produced non-finite latents (try fewer guidance or a float32 model)")
        videos = to_uint8(self.backbone.codec.decode(latents)) if decode else np.zeros((0,), np.uint8)
        return VideoOutput(videos, latents)
