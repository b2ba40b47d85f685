"""The tuning-based baseline of the Ingredients paper ("Inversion", Table 1): a LoRA on the DiT fine-tuned for each
reference set on its photos (each a one-frame video) with a caption that names nobody, then used with the prompt."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...core import Handle, add_lora
from ...training.objectives import flow_matching_inputs, sample_sigmas

NAME = "cinetune-inversion"


def tune_lora(backbone, photos: list[np.ndarray], caption: str = "A person.", steps: int = 100, rank: int = 8,
              lr: float = 1e-3, shift: float = 2.0, seed: int = 0) -> Handle:
    """Attach a rank-`rank` LoRA to backbone.transformer and fit it to `photos` ((H, W, 3) uint8, one per identity)
    with the flow-matching loss for `steps` steps (all photos each step); returns the handle (remove() detaches)."""
    from ...toyworld.dataset import video_to_tensor

    tr = backbone.transformer
    flags = {n: p.requires_grad for n, p in tr.named_parameters()}
    handle = add_lora(tr, rank=rank, name=NAME)
    params = [p for n, p in tr.named_parameters() if "lora_" in n]
    for p in params:
        p.requires_grad_(True)
    dev = params[0].device
    with torch.no_grad():
        x0 = backbone.codec.encode(torch.stack([video_to_tensor(np.asarray(p)[None]) for p in photos]).to(dev))
        emb = backbone.text_encoder([caption] * len(photos)).to(dev)
    opt = torch.optim.AdamW(params, lr=lr)
    g = torch.Generator().manual_seed(seed)
    tr.train()
    for _ in range(steps):
        sig = sample_sigmas(len(photos), shift, g).to(dev)
        xt, t, target = flow_matching_inputs(x0, sig, torch.randn(x0.shape, generator=g).to(dev))
        loss = F.mse_loss(backbone.view(xt, t, emb), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    tr.eval()
    for n, p in tr.named_parameters():
        p.requires_grad_(flags.get(n, False))
    handle.loss = float(loss.detach())
    return handle
