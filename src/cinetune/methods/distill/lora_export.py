"""A distilled student as a LoRA on its teacher: the best rank-r approximation (truncated SVD) of each linear
layer's weight delta, in diffusers' Wan LoRA format, so `WanPipeline.load_lora_weights` loads it onto the base (as
users load lightx2v's 4-step LoRAs). Biases, norms and embeddings are not low-rank and are left out; the report says
how much of the delta that drops."""

from __future__ import annotations

import torch

from ...errors import CinetuneError


def linear_names(transformer: torch.nn.Module) -> list[str]:
    """Module names of the transformer's nn.Linear layers (their `.weight` is what a LoRA adapts)."""
    return [n for n, m in transformer.named_modules() if isinstance(m, torch.nn.Linear)]


def lora_from_deltas(deltas: dict[str, torch.Tensor], transformer: torch.nn.Module, rank: int
                     ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """({"<module>.lora_A.weight": (r, in), "<module>.lora_B.weight": (out, r)}, report) from weight deltas.

    delta ~= B @ A with B = U_r sqrt(S_r), A = sqrt(S_r) V_r^T (the Eckart-Young optimum in Frobenius norm). report:
    kept (the fraction of the linear deltas' squared norm the rank keeps), linear (the linear layers' share of the
    whole delta's squared norm) and layers."""
    if rank < 1:
        raise CinetuneError(f"LoRA rank must be >= 1, got {rank}")
    out, kept, total, everything = {}, 0.0, 0.0, 0.0
    linear = set(linear_names(transformer))
    for name, d in deltas.items():
        everything += float(d.double().square().sum())
        module, _, leaf = name.rpartition(".")
        if leaf != "weight" or module not in linear:
            continue
        U, S, Vh = torch.linalg.svd(d.float(), full_matrices=False)
        r = min(rank, S.numel())
        root = S[:r].sqrt()
        out[f"{module}.lora_A.weight"] = (root[:, None] * Vh[:r]).contiguous()
        out[f"{module}.lora_B.weight"] = (U[:, :r] * root[None]).contiguous()
        kept += float(S[:r].double().square().sum())
        total += float(S.double().square().sum())
    if not out:
        raise CinetuneError("the student's deltas name no linear layer of this transformer")
    return out, {"kept": kept / max(total, 1e-30), "linear": total / max(everything, 1e-30),
                 "layers": len(out) // 2}
