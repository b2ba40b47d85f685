"""`cinetune bench text-features`: how far the toy text encoder's (MiniLM's) token states move, layer by layer, when
one attribute word of a toy caption is swapped. A DiT can only follow a word whose change reaches its text
features; this says which words the encoder's layers separate least (docs/toy-world.md)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..io import write_text

_OBJ = "A {c} {s} {m} on a grey background."
_PERSON = "A person with {k} skin, long {h} hair and glasses in a blue shirt nods on a grey background."
# attribute -> caption pairs that differ in that attribute only
SWAPS: dict[str, list[tuple[str, str]]] = {
    "shape": [(_OBJ.format(c="red", s=a, m="moves to the left"), _OBJ.format(c="red", s=b, m="moves to the left"))
              for a, b in (("circle", "square"), ("star", "heart"), ("triangle", "ring"), ("cross", "circle"))],
    "colour": [(_OBJ.format(c=a, s="circle", m="rises"), _OBJ.format(c=b, s="circle", m="rises"))
               for a, b in (("red", "blue"), ("yellow", "green"), ("pink", "purple"), ("white", "brown"))],
    "left/right": [(_OBJ.format(c="red", s="star", m=a), _OBJ.format(c="red", s="star", m=b))
                   for a, b in (("moves to the left", "moves to the right"), ("slides left", "slides right"),
                                ("drifts leftward", "drifts rightward"))],
    "up/down": [(_OBJ.format(c="red", s="star", m=a), _OBJ.format(c="red", s="star", m=b))
                for a, b in (("moves up", "moves down"), ("rises", "sinks"))],
    "hair colour": [(_PERSON.format(k="tan", h=a), _PERSON.format(k="tan", h=b))
                    for a, b in (("red", "blond"), ("black", "white"), ("blue", "brown"))],
    "skin": [(_PERSON.format(k=a, h="red"), _PERSON.format(k=b, h="red"))
             for a, b in (("tan", "dark"), ("pale", "brown"))],
}


def layer_changes(encoder=None) -> dict[str, np.ndarray]:
    """attribute -> (layers,) mean relative change ||h(a) - h(b)|| / ||h(a)|| of the token states, mean over tokens
    and pairs (layer 0: the embeddings)."""
    from ..backbones.text import minilm_encoder

    enc = encoder or minilm_encoder()

    @torch.no_grad()
    def states(text: str) -> list[torch.Tensor]:
        tok = enc.tokenizer(text, return_tensors="pt")
        return [h[0] for h in enc.model(**tok, output_hidden_states=True).hidden_states]

    out = {}
    for attr, pairs in SWAPS.items():
        rows = []
        for a, b in pairs:
            ha, hb = states(a), states(b)
            if ha[0].shape != hb[0].shape:  # a swap that changes the token count has no token-wise difference
                raise ValueError(f"{a!r} and {b!r} tokenise to different lengths")
            rows.append([float((x - y).norm(dim=-1).mean() / x.norm(dim=-1).mean()) for x, y in zip(ha, hb)])
        out[attr] = np.mean(rows, 0)
    return out


def run(out: Path, quick: bool = False) -> Path:
    t0 = time.perf_counter()
    res = layer_changes()
    attrs = list(res)
    lines = ["# Toy text features: which words the text encoder's layers separate", "",
             "`cinetune bench text-features`: relative change of MiniLM's token states (mean over tokens and over "
             "the pairs in `bench/text_features.py`) when one attribute word of a toy caption is swapped, per layer "
             "(0: the embeddings; the last is what the toy DiTs read).", "",
             "| layer | " + " | ".join(attrs) + " |", "|---:|" + "---:|" * len(attrs)]
    for layer in range(len(res[attrs[0]])):
        lines.append(f"| {layer} | " + " | ".join(f"{res[a][layer]:.3f}" for a in attrs) + " |")
    last = {a: res[a][-1] for a in attrs}
    lines += ["", f"Last layer, relative to the shape word: " + ", ".join(
        f"{a} {last[a] / last['shape']:.2f}" for a in attrs if a != "shape") + ".",
        "", f"Wall time {time.perf_counter() - t0:.0f} s.", ""]
    path = Path(out) / ("text-features.md" if not quick else "text-features-quick.md")
    write_text(path, "\n".join(lines))
    return path
