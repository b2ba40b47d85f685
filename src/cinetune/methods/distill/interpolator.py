"""The latent frame interpolator (paper Sec. 3.4, appendix 8): a small U-Net that predicts the latent frame between
two neighbours; applied to every adjacent pair it turns F latent frames into 2F - 1."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ...errors import CinetuneError


def _block(cin: int, cout: int) -> nn.Sequential:
    """The appendix's ConvBlock: conv 3x3, batch norm, ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class LatentInterpolator(ModelMixin, ConfigMixin):
    """(N, 2C, H, W) two latent frames side by side -> (N, C, H, W) the frame between them.

    Encoder: one ConvBlock per level, max-pooling between levels; decoder: transposed convolutions, the encoder's
    feature map of the same level concatenated, a ConvBlock; a 1x1 convolution out. The output is added to the
    average of the two frames (zero-initialised head): for still content the average is already right, so the net
    learns only the correction, and an untrained one blends linearly instead of returning noise."""

    @register_to_config
    def __init__(self, latent_channels: int = 16, channels: tuple[int, ...] = (32, 64, 128)):
        super().__init__()
        ch = list(channels)
        self.down = nn.ModuleList(_block(c_in, c) for c_in, c in zip([2 * latent_channels] + ch[:-1], ch))
        self.up = nn.ModuleList(nn.ConvTranspose2d(c, c_out, 2, stride=2) for c, c_out in zip(ch[:0:-1], ch[-2::-1]))
        self.fuse = nn.ModuleList(_block(2 * c, c) for c in ch[-2::-1])
        self.head = nn.Conv2d(ch[0], latent_channels, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def multiple(self) -> int:
        return 2 ** (len(self.down) - 1)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        C = pair.shape[1] // 2
        H, W = pair.shape[-2:]
        m = self.multiple
        x = F.pad(pair, (0, -W % m, 0, -H % m), mode="replicate")  # any latent size, not only multiples of 2^levels
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for up, fuse, skip in zip(self.up, self.fuse, skips[-2::-1]):
            x = fuse(torch.cat([up(x), skip], 1))
        out = self.head(x)[..., :H, :W]
        return 0.5 * (pair[:, :C] + pair[:, C:]) + out

    def middles(self, latents: torch.Tensor) -> torch.Tensor:
        """(B,C,F,H,W) -> (B,C,F-1,H,W): the frame between each adjacent pair."""
        B, C, Fr, H, W = latents.shape
        a, b = latents[:, :, :-1], latents[:, :, 1:]
        pairs = torch.cat([a, b], 1).permute(0, 2, 1, 3, 4).reshape(B * (Fr - 1), 2 * C, H, W)
        dtype = next(self.parameters()).dtype
        mid = self(pairs.to(dtype)).float()
        return mid.reshape(B, Fr - 1, C, H, W).permute(0, 2, 1, 3, 4)

    def interpolate(self, latents: torch.Tensor) -> torch.Tensor:
        """(B,C,F,H,W) -> (B,C,2F-1,H,W): the input frames at even positions, the predicted ones between them."""
        B, C, Fr, H, W = latents.shape
        if Fr < 2:
            return latents
        mid = self.middles(latents)
        out = latents.new_empty(B, C, 2 * Fr - 1, H, W)
        out[:, :, 0::2], out[:, :, 1::2] = latents, mid.to(latents.dtype)
        return out


def interpolation_pairs(latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Training pairs from clean latents (B,C,F,H,W), F >= 3: every odd frame is rebuilt from its two neighbours (the
    appendix: a 21-frame latent video subsampled to 11 frames and interpolated back). -> (kept frames (B,C,K,H,W),
    the frames between them (B,C,K-1,H,W)); an even F drops its last frame."""
    Fr = latents.shape[2]
    n = Fr if Fr % 2 else Fr - 1
    return latents[:, :, 0:n:2], latents[:, :, 1:n:2]


def find_interpolator(path: str) -> Path:
    """A trained interpolator's directory: the path itself, its interpolator/, final/interpolator/ of a run, or a
    shipped interpolator's name."""
    from ...backbones.presets import assets_root

    p = Path(path)
    roots = [p] + ([assets_root() / path] if path and "/" not in path else [])
    for d in (c for r in roots for c in (r, r / "interpolator", r / "final" / "interpolator")):
        if (d / "config.json").is_file() and (d / "diffusion_pytorch_model.safetensors").is_file():
            return d
    raise CinetuneError(f"{path}: no trained interpolator there (looked for config.json in it, interpolator/ and "
                        "final/interpolator/, and among the shipped models)")


def load_interpolator(path: str | Path) -> LatentInterpolator:
    """The trained interpolator that find_interpolator(path) names (one-line errors)."""
    from ...core import load_pretrained

    return load_pretrained(LatentInterpolator, find_interpolator(str(path)))
