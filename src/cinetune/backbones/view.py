"""A thin view over a video DiT: blocks, width, token grid and layout, so adapters never special-case a backbone."""

from __future__ import annotations

import torch

from .memory import compute_dtype

# Video layout at every public boundary is (B, C, F, H, W). CogVideoX's transformer takes (B, F, C, H, W):
# the conversion lives here only.


class VideoDiTView:
    def __init__(self, transformer: torch.nn.Module, family: str):
        if family not in ("wan", "cogvideox"):
            raise ValueError(f"unknown backbone family {family!r}")
        self.transformer, self.family = transformer, family
        cfg = transformer.config
        if family == "wan":
            self.patch_size = tuple(cfg.patch_size)
        else:
            self.patch_size = (int(getattr(cfg, "patch_size_t", None) or 1), cfg.patch_size, cfg.patch_size)
        self.hidden_size = int(cfg.num_attention_heads * cfg.attention_head_dim)

    @property
    def blocks(self) -> torch.nn.ModuleList:
        """Transformer blocks in execution order (each maps hidden_states (B, N, D) -> (B, N, D))."""
        return self.transformer.blocks if self.family == "wan" else self.transformer.transformer_blocks

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    def token_grid(self, latent_shape: tuple[int, ...]) -> tuple[int, int, int]:
        """(C, F, H, W) or (B, C, F, H, W) latent shape -> token grid (F', H', W'); tokens are row-major in it."""
        f, h, w = latent_shape[-3:]
        pt, ph, pw = self.patch_size
        return (f // pt, h // ph, w // pw)

    def to_model(self, latents: torch.Tensor) -> torch.Tensor:
        return latents if self.family == "wan" else latents.transpose(1, 2)

    def from_model(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.family == "wan" else x.transpose(1, 2)

    def __call__(self, latents: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                 module: torch.nn.Module | None = None) -> torch.Tensor:
        """Model prediction for latents (B, C, F, H, W) at `timestep` (B,) -> (B, C, F, H, W).

        `module`: call this wrapper of the transformer instead (e.g. the DDP module accelerate prepared)."""
        t = module if module is not None else self.transformer
        dtype = compute_dtype(self.transformer)
        x = self.to_model(latents.to(dtype))
        ehs = encoder_hidden_states.to(dtype)
        if self.family == "wan":
            out = t(hidden_states=x, timestep=timestep, encoder_hidden_states=ehs, return_dict=False)[0]
        else:
            out = t(hidden_states=x, encoder_hidden_states=ehs, timestep=timestep,
                    image_rotary_emb=self._cogvideox_rope(latents), return_dict=False)[0]
        return self.from_model(out).float()

    def _cogvideox_rope(self, latents: torch.Tensor):
        """CogVideoXPipeline's rotary tables: 1.0 (no temporal patch) a linspace grid cropped from the config's
        sample size, 1.5 a slice of a grid of the sample size."""
        cfg = self.transformer.config
        if not getattr(cfg, "use_rotary_positional_embeddings", False):
            return None
        from diffusers.models.embeddings import get_3d_rotary_pos_embed
        from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

        f, h, w = self.token_grid(latents.shape)
        base_h, base_w = cfg.sample_height // cfg.patch_size, cfg.sample_width // cfg.patch_size
        if getattr(cfg, "patch_size_t", None) is None:
            return get_3d_rotary_pos_embed(embed_dim=cfg.attention_head_dim, grid_size=(h, w), temporal_size=f,
                                           crops_coords=get_resize_crop_region_for_grid((h, w), base_w, base_h),
                                           device=latents.device)
        return get_3d_rotary_pos_embed(embed_dim=cfg.attention_head_dim, crops_coords=None, grid_size=(h, w),
                                       temporal_size=f, grid_type="slice", max_size=(base_h, base_w),
                                       device=latents.device)