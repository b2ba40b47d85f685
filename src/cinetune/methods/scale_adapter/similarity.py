"""Block similarity of two DiT scales (Scale-Adapter paper, Appendix A / Fig. 9): run both models on the same noisy
latents, timesteps and prompts, capture every block's hidden states, and compare every (large, small) block pair by
- linear CKA (centred kernel alignment of the token features; width-independent, 1 = same representation up to a
  rotation and scale),
- the 1-D Wasserstein distance between the two blocks' activation-value distributions (the paper's distance),
- a linear probe's held-out accuracy at telling the two models' tokens apart after projecting both to their top
  principal components (0.5 = indistinguishable; the paper measures 0.46-0.47).
The paper's observation (first and last blocks most similar) is what `pairing.large_blocks(strategy="ends")`
encodes; this analysis checks it for a given pair of models and suggests a pairing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...io import atomic_path, write_text


@torch.no_grad()
def capture_blocks(backbone, latents: torch.Tensor, timestep: torch.Tensor, text: torch.Tensor) -> list[torch.Tensor]:
    """Every block's output hidden states (B, N, D) for one denoiser call."""
    out: list[torch.Tensor] = []
    hooks = [b.register_forward_hook(lambda m, a, o: out.append((o[0] if isinstance(o, tuple) else o).float()))
             for b in backbone.view.blocks]
    try:
        backbone.view(latents, timestep, text)
    finally:
        for h in hooks:
            h.remove()
    return out


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """x (n, p), y (n, q) -> linear CKA in [0, 1] (Kornblith et al. 2019)."""
    x, y = x - x.mean(0), y - y.mean(0)
    xy = (y.T @ x).square().sum()
    return float(xy / ((x.T @ x).square().sum().sqrt() * (y.T @ y).square().sum().sqrt()).clamp_min(1e-12))


def wasserstein_1d(x: torch.Tensor, y: torch.Tensor, quantiles: int = 512) -> float:
    """W1 between the value distributions of x and y (compared at evenly spaced quantiles)."""
    q = torch.linspace(0.0005, 0.9995, quantiles)
    sub = lambda t: t.flatten()[torch.randperm(t.numel(), generator=torch.Generator().manual_seed(0))[:200_000]]  # noqa: E731
    return float((torch.quantile(sub(x), q) - torch.quantile(sub(y), q)).abs().mean())


def probe_accuracy(x: torch.Tensor, y: torch.Tensor, dims: int = 16, steps: int = 200, seed: int = 0) -> float:
    """Held-out accuracy of a logistic-regression probe separating tokens x (n, p) from the same tokens y (n, q) seen
    by another model, each projected to its own top `dims` principal components and standardised (so width and scale do not give it away)."""
    def project(t: torch.Tensor) -> torch.Tensor:
        t = t - t.mean(0)
        _, _, v = torch.pca_lowrank(t, q=dims, center=False)
        z = t @ v[:, :dims]
        return z / z.std(0).clamp_min(1e-6)

    g = torch.Generator().manual_seed(seed)
    px, py = project(x), project(y)
    # split by token: x[k] and y[k] are the same token seen by the two models, so a token must be held out from
    # both classes (else the probe memorises tokens and scores below chance on their other version)
    perm = torch.randperm(len(px), generator=g)
    tr, te = perm[: len(px) * 3 // 4], perm[len(px) * 3 // 4:]
    data = torch.cat([px[tr], py[tr], px[te], py[te]])
    label = torch.cat([torch.zeros(len(tr)), torch.ones(len(tr)), torch.zeros(len(te)), torch.ones(len(te))])
    cut = 2 * len(tr)
    w = torch.zeros(data.shape[1] + 1, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=steps)
    feats = F.pad(data[:cut], (0, 1), value=1.0)

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(feats @ w, label[:cut]) + 1e-3 * w.square().sum()
        loss.backward()
        return loss
    opt.step(closure)
    pred = (F.pad(data[cut:], (0, 1), value=1.0) @ w.detach()) > 0
    return float((pred == label[cut:].bool()).float().mean())


def analyse(large, small, clips: int = 6, sigmas: tuple[float, ...] = (0.25, 0.5, 0.75), seed: int = 0,
            tokens_per_block: int = 4096) -> dict:
    """Similarity matrices (large blocks x small blocks) averaged over `sigmas`, on toy-world clips of dataset
    seed+1 (held out from every training run)."""
    from ...toyworld import clip_seed, render_clip
    from ...toyworld.dataset import video_to_tensor

    rendered = [render_clip(clip_seed(seed + 1, i)) for i in range(clips)]
    video = torch.stack([video_to_tensor(c.video) for c, _ in rendered])
    x0 = large.codec.encode(video)
    text_l, text_s = large.text_encoder([t for _, t in rendered]), small.text_encoder([t for _, t in rendered])
    L, S = large.view.num_blocks, small.view.num_blocks
    cka, wd, probe = np.zeros((L, S)), np.zeros((L, S)), np.zeros((L, S))
    g = torch.Generator().manual_seed(seed)
    for sigma in sigmas:
        noise = torch.randn(x0.shape, generator=g)
        xt = (1 - sigma) * x0 + sigma * noise
        t = torch.full((clips,), sigma * 1000.0)
        hl = [h.flatten(0, 1) for h in capture_blocks(large, xt, t, text_l)]
        hs = [h.flatten(0, 1) for h in capture_blocks(small, xt, t, text_s)]
        keep = torch.randperm(hl[0].shape[0], generator=g)[:tokens_per_block]
        for i in range(L):
            for j in range(S):
                a, b = hl[i][keep], hs[j][keep]
                cka[i, j] += linear_cka(a, b) / len(sigmas)
                wd[i, j] += wasserstein_1d(a, b) / len(sigmas)
                probe[i, j] += probe_accuracy(a, b, seed=seed) / len(sigmas)
    return {"cka": cka.tolist(), "wasserstein": wd.tolist(), "probe_accuracy": probe.tolist(),
            "best_small_for_large": [int(np.argmax(r)) for r in cka], "clips": clips, "sigmas": list(sigmas)}


def report(result: dict, out: Path, large_name: str, small_name: str) -> Path:
    """Write block-similarity.json / .md / .png into `out`; returns the markdown path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .pairing import pair_blocks

    out = Path(out)
    cka, wd, probe = (np.array(result[k]) for k in ("cka", "wasserstein", "probe_accuracy"))
    L, S = cka.shape
    depth = [(i, round(i * (S - 1) / max(1, L - 1))) for i in range(L)]  # same relative depth
    write_text(out / "block-similarity.json", json.dumps(result, indent=1) + "\n")
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    for ax, m, title in zip(axes[:3], (cka, wd, probe), ("linear CKA ↑", "Wasserstein-1 ↓", "probe accuracy (0.5 = same)")):
        im = ax.imshow(m, aspect="auto", cmap="viridis")
        ax.set_xlabel(f"{small_name} block", fontsize=8)
        ax.set_ylabel(f"{large_name} block", fontsize=8)
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax)
    axes[3].plot([cka[i, j] for i, j in depth], marker="o", label="CKA")
    axes[3].plot([probe[i, j] for i, j in depth], marker="s", label="probe acc.")
    axes[3].set_title("same relative depth", fontsize=9)
    axes[3].set_xlabel(f"{large_name} block", fontsize=8)
    axes[3].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out / "block-similarity.png") as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    default = pair_blocks(L, S, 3)
    lines = [f"# Block similarity: {large_name} vs {small_name}", "",
             f"`cinetune analyze block-similarity --large {large_name} --small {small_name}`: both models on the same "
             f"noisy latents of {result['clips']} held-out toy clips at sigma {', '.join(map(str, result['sigmas']))}; "
             "plot: block-similarity.png, matrices: block-similarity.json.", "",
             "| large block | small block (same depth) | CKA ↑ | Wasserstein-1 ↓ | probe acc. | most similar small block (CKA) |",
             "|---:|---:|---:|---:|---:|---:|"]
    for i, j in depth:
        lines.append(f"| {i} | {j} | {cka[i, j]:.3f} | {wd[i, j]:.3f} | {probe[i, j]:.3f} | "
                     f"{result['best_small_for_large'][i]} |")
    ranked = sorted(range(L), key=lambda i: -cka[i, depth[i][1]])
    lines += ["", f"Large blocks ranked by same-depth CKA: {ranked}. The default pairing (strategy `ends`, 3 "
              f"adapters) is {default}.", ""]
    path = out / "block-similarity.md"
    write_text(path, "\n".join(lines))
    return path
