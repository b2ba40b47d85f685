"""The latent cache of the flow-matching tasks: per-clip rows (VAE latents, text embeddings and task columns such as
foreground maps or condition videos) of toy clips 0..n-1, kept in one safetensors file that runs share.

The VAE and text encoder are frozen, so cached rows are exact. A smaller cache grows (only missing rows are
rendered and encoded, a clip once for all its columns); latents written with other latent statistics are carried
over (backbones.codec.carry_over); text encoded at another max_text_len is encoded again from the captions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..backbones.codec import carry_over
from ..io import atomic_path
from ..toyworld.dataset import video_to_tensor

Clip = tuple  # (toyworld clip, caption) as render_clip returns it


@dataclass
class Column:
    name: str
    compute: Callable[[list[Clip]], torch.Tensor]  # clips -> (b, ...) rows, on the CPU
    latent: bool = False  # normalised VAE latents (carried over when the codec's statistics change)


def latents_column(backbone, device, name: str = "latents", pixels: Callable[[Clip], object] | None = None) -> Column:
    """VAE latents of the clips' videos (or of `pixels(clip)`, (F,H,W,3) uint8, e.g. a condition video)."""
    def compute(clips: list[Clip]) -> torch.Tensor:
        videos = torch.stack([video_to_tensor(pixels(c) if pixels else c[0].video) for c in clips])
        return backbone.codec.encode(videos.to(device)).cpu()
    return Column(name, compute, latent=True)


def text_column(backbone) -> Column:
    return Column("text", lambda clips: backbone.text_encoder([t for _, t in clips]).half().cpu())


def encode_captions(backbone, captions: Callable[[int], str], n: int) -> torch.Tensor:
    """(n, max_text_len, dim) float16 text embeddings of clips 0..n-1's captions (captions only: nothing rendered)."""
    L = backbone.text_encoder.max_len
    return torch.cat([backbone.text_encoder([captions(i)]).half()
                      for i in tqdm(range(n), desc=f"encoding captions at {L} tokens")])


@torch.no_grad()
def load_or_build(path: Path, n: int, columns: list[Column], render: Callable[[int], Clip], backbone,
                  captions: Callable[[int], str], chunk: int = 16, desc: str = "latent cache",
                  flush_every: int = 50) -> dict:
    """{column: (n, ...) rows of clips 0..n-1}, as stored (text float16); `path` is created or grown as needed, and
    written every `flush_every` chunks while it grows."""
    data = load_file(path) if path.is_file() else {}
    names = [c.name for c in columns]
    have = {c: data[c].shape[0] if c in data else 0 for c in names}
    changed = any(have.values()) and carry_over(data, [c.name for c in columns if c.latent and have[c.name]],
                                                backbone.codec)
    if have.get("text") and data["text"].shape[1] != backbone.text_encoder.max_len:
        data["text"] = encode_captions(backbone, captions, have["text"])
        changed = True
    start = min(have.values())
    if start < n:
        new: dict[str, list] = {c: [] for c in names}
        for k, s in enumerate(tqdm(range(start, n, chunk), desc=desc)):
            clips = [render(i) for i in range(s, min(n, s + chunk))]
            for c in columns:
                skip = max(have[c.name] - s, 0)  # rows of this chunk the column already holds
                if skip < len(clips):
                    new[c.name].append(c.compute(clips[skip:]))
            if (k + 1) % flush_every == 0:  # a stopped build resumes from here (the file grows by missing rows)
                _save(path, _joined(data, have, new), backbone)
        data = _joined(data, have, new)
        changed = True
    if changed:
        _save(path, data, backbone)
    return {c: data[c][:n] for c in names}


def _joined(data: dict, have: dict, new: dict) -> dict:
    return {**data, **{c: torch.cat(([data[c]] if have[c] else []) + v).contiguous() for c, v in new.items() if v}}


def _save(path: Path, data: dict, backbone) -> None:
    data = {**data, **backbone.codec.tables()}  # the statistics every latent in it is normalised with
    with atomic_path(path) as tmp:
        save_file(data, str(tmp))
