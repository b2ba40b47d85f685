"""Text-to-video sampling: prompt (or embeddings) -> flow-matching / scheduler sampling with CFG -> VAE decode."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..backbones import Backbone, load_backbone
from ..backbones.memory import DTYPES, MemoryOptions, apply_memory
from ..errors import CinetuneError
from .schedulers import make_scheduler

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

    def __init__(self, backbone: Backbone, device: str | torch.device = "cpu", memory: MemoryOptions | None = None):
        self.backbone, self.device, self.memory = backbone, torch.device(device), memory or MemoryOptions()
        apply_memory(backbone, self.device, self.memory)

    @classmethod
    def from_pretrained(cls, model: str, device: str | torch.device | None = None,
                        dtype: torch.dtype | str | None = None, memory: MemoryOptions | None = None
                        ) -> "TextToVideoPipeline":
        """`dtype` (a torch dtype or fp32 / bf16 / fp16) is shorthand for MemoryOptions(dtype=...); the model is
        loaded in it (not loaded in fp32 and cast)."""
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype is not None:
            name = dtype if isinstance(dtype, str) else {v: k for k, v in DTYPES.items()}.get(dtype)
            if name is None:
                raise CinetuneError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype}")
            memory = dataclasses.replace(memory or MemoryOptions(), dtype=name)
        memory = memory or MemoryOptions()
        return cls(load_backbone(model, dtype=memory.torch_dtype), device, memory)

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

    def _release_text_encoder(self) -> None:
        if self.memory.release_text_encoder and self.backbone.text_encoder.model is not None:
            self.backbone.text_encoder.release()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    @torch.no_grad()
    def __call__(self, prompt: str | list[str] | None = None, *, prompt_embeds: torch.Tensor | None = None,
                 negative_prompt: str = "", negative_prompt_embeds: torch.Tensor | None = None,
                 frames: int | None = None, height: int | None = None, width: int | None = None,
                 steps: int | None = None, guidance: float = 5.0, seed: int = 0, latents: torch.Tensor | None = None,
                 progress: bool = True, model_fn: ModelFn | None = None, decode: bool = True, sampler=None,
                 interpolate: bool = False, scheduler: str | None = None) -> VideoOutput:
        """`sampler`: a distilled student's few-step sampler (methods.distill.model.FewStepSampler) instead of the
        backbone's scheduler; `steps` defaults to 30 for the scheduler, to the student's own steps for a sampler;
        `interpolate`: the sampler's frame interpolation (paper Sec. 3.4); `scheduler`: one of
        `schedulers.SCHEDULERS` instead of the model's own (flow-matching models)."""
        p = self.backbone.preset
        frames = p.frames if frames is None else frames
        height = p.height if height is None else height
        width = p.width if width is None else width
        self.check_size(frames, height, width)
        if steps is not None and steps < 1:
            raise CinetuneError(f"steps must be >= 1, got {steps}")
        if interpolate and sampler is None:
            raise CinetuneError("frame interpolation needs a distilled student's sampler")
        if scheduler is not None and sampler is not None:
            raise CinetuneError("a distilled student samples with its own few-step sampler: give no scheduler")
        scheduler = make_scheduler(scheduler, self.backbone.scheduler) if scheduler is not None else None
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
        self._release_text_encoder()
        shape = (B, *self.backbone.codec.latent_shape(frames, height, width))
        view = self.backbone.view
        model_fn = model_fn or (lambda x, t, e, i: view(x, t, e))

        def guided(x: torch.Tensor, t: torch.Tensor, i: int) -> torch.Tensor:
            t = (t.expand(x.shape[0]) if t.ndim == 0 else t).to(self.device)
            pred = model_fn(torch.cat([x, x]) if cfg else x, torch.cat([t, t]) if cfg else t, embeds, i)
            if cfg:
                uncond, cond = pred.chunk(2)
                pred = uncond + guidance * (cond - uncond)
            return pred

        if sampler is not None:
            if latents is not None:
                raise CinetuneError("a few-step sampler draws its own noise at every step: pass seed, not latents")
            latents = sampler.sample(guided, shape, torch.Generator().manual_seed(seed), self.device, steps,
                                     interpolate)
        else:
            latents = self._schedule(guided, shape, steps or 30, seed, latents, progress, scheduler)
        if not torch.isfinite(latents).all():
            raise CinetuneError("sampling produced non-finite latents (try a lower guidance or a float32 model)")
        videos = to_uint8(self.backbone.codec.decode(latents)) if decode else np.zeros((0,), np.uint8)
        return VideoOutput(videos, latents)

    def _schedule(self, guided, shape: tuple[int, ...], steps: int, seed: int, latents: torch.Tensor | None,
                  progress: bool, scheduler=None) -> torch.Tensor:
        """`scheduler` (default: the backbone's own) from noise (or `latents`) over `steps` guided predictions."""
        if latents is None:
            latents = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
        latents = latents.to(self.device, torch.float32)
        scheduler = scheduler if scheduler is not None else copy.deepcopy(self.backbone.scheduler)
        scheduler.set_timesteps(steps, device=self.device)
        if hasattr(scheduler, "init_noise_sigma"):
            latents = latents * scheduler.init_noise_sigma
        timesteps = scheduler.timesteps
        # CogVideoXDPMScheduler (what the released CogVideoX checkpoints ship) steps from the previous step's x0
        # estimate and timestep, and draws its noise from the call's generator, as CogVideoXPipeline calls it
        dpm = type(scheduler).__name__ == "CogVideoXDPMScheduler"
        generator, x0, m = torch.Generator().manual_seed(seed), None, self.backbone.view
        for i, t in enumerate(tqdm(timesteps, desc="sampling", disable=not progress, leave=False)):
            x = scheduler.scale_model_input(latents, t) if hasattr(scheduler, "scale_model_input") else latents
            pred = guided(x, t, i)
            if dpm:  # in the model's own layout, so the step's noise is drawn as diffusers draws it
                latents, x0 = scheduler.step(m.to_model(pred), x0, t, timesteps[i - 1] if i > 0 else None,
                                             m.to_model(latents), generator=generator, return_dict=False)
                latents = m.from_model(latents)
            else:
                latents = scheduler.step(pred, t, latents, return_dict=False)[0]
        return latents
