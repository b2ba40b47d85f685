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
        cfg = self.transformer.config
        if not getattr(cfg, "use_rotary_positional_embeddings", False):
            return None
        from diffusers.models.embeddings import get_3d_rotary_pos_embed

        f, h, w = self.token_grid(latents.shape)
        # CogVideoX-5B convention: base grid from the config's sample size, crops centred in it.
        base_h = cfg.sample_height // cfg.patch_size
        base_w = cfg.sample_width // cfg.patch_size
        return get_3d_rotary_pos_embed(embed_dim=cfg.attention_head_dim, crops_coords=((0, 0), (h, w)),
                                       grid_size=(h, w), temporal_size=f, grid_type="slice",
                                       max_size=(max(base_h, h), max(base_w, w)), device=latents.device)
