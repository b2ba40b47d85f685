"""Config section and training preset of Scale-Adapter (`cinetune train scale-adapter`)."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import CinetuneError
from ..control.config import kinds_of


def block_list(text: str) -> list[int] | None:
    """'0,4,7' -> [0, 4, 7]; '' -> None."""
    try:
        return [int(x) for x in text.split(",") if x.strip()] or None
    except ValueError:
        raise CinetuneError(f"expected a comma list of block indices, got {text!r}") from None


@dataclass
class ScaleConfig:
    """Scale-Adapter: `cinetune train scale-adapter --large L --small S --conditions a,b`."""

    small: str = "toy-small-control"  # the small conditional model: a concat control adapter (dir or shipped name)
    small_backbone: str = "toy-small"
    conditions: str = "canny,depth,pose"
    count: int = 3  # adapters (large blocks paired)
    strategy: str = "ends"  # ends | even | first | last (methods.scale_adapter.pairing)
    large_blocks: str = ""  # explicit comma list (overrides count/strategy)
    small_blocks: str = ""  # explicit comma list (default: the same relative depth)
    mce: bool = True  # Mixture of Condition Experts (False: the paper's "w/o MCE" ablation)
    num_experts: int = 3
    top_k: int = 2
    expert_rank: int = 16
    keep_prob: float = 0.5  # each condition kind is present in a training sample with this probability (>= 1 kept)
    clip_cache: int = 1000

    def validate(self) -> None:
        from .pairing import STRATEGIES

        kinds_of(self.conditions, "scale.conditions")
        if self.strategy not in STRATEGIES:
            raise CinetuneError(f"scale.strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if not 0.0 < self.keep_prob <= 1.0 or not 1 <= self.top_k <= self.num_experts:
            raise CinetuneError(f"scale: need 0 < keep_prob <= 1 and 1 <= top_k <= num_experts, got "
                                f"{self.keep_prob}, {self.top_k}, {self.num_experts}")
        block_list(self.large_blocks), block_list(self.small_blocks)

    def input_dirs(self) -> list:
        """Weights a run depends on besides the large model: the small backbone's and its control adapter's."""
        from ...backbones.presets import assets_root, get_preset
        from ...core import find_manifest
        from ..control.model import MANIFEST

        small = get_preset(self.small_backbone)
        found = find_manifest(self.small, [MANIFEST])
        return ([assets_root() / small.asset / "transformer"] if small.is_toy else []) + ([found[0]] if found else [])


PRESETS: dict[str, dict] = {
    # Frozen shipped toy-large steered by the frozen small conditional model; only the adapters train.
    "toy-scale-adapter": dict(task="scale-adapter", backbone="toy-large", init="toy-large",
                              output_dir="runs/toy-scale-adapter", steps=1000, batch_size=8,
                              data=dict(cache_path="runs/control-cache-17x64x64.safetensors"),
                              optim=dict(lr=2e-4, warmup_steps=50), checkpoint_every=250, validate_every=500),
}
