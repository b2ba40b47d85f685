"""Config section and training presets of the control methods (`cinetune train control`)."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import CinetuneError

NORMS = ("paper", "code", "zero", "none")


def kinds_of(text: str, where: str) -> list[str]:
    """'canny,depth' -> ['canny', 'depth'], every kind known to cinetune.conditions."""
    from ...conditions import KINDS

    kinds = [k for k in text.split(",") if k]
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise CinetuneError(f"{where}: unknown or empty {bad or text!r}; known: {', '.join(KINDS)}")
    return kinds


@dataclass
class ControlConfig:
    """Control adapters: `cinetune train control --method M --conditions a,b`."""

    method: str = "controlnext"  # controlnext | dit-controlnet | concat
    conditions: str = "canny,depth,pose"  # comma list; one adapter takes them together
    finetune: str = "auto"  # regex of base weights trained too; auto = the method's default, "" = none
    base_lr_scale: float = 0.1  # base weights train at lr * this (ControlNeXt code: 1e-5 vs 1e-4)
    lora_rank: int = 0  # >0: LoRA on the attention projections instead of fine-tuning base weights (concat)
    dropout: float = 0.1  # per-condition dropout: each kind left out independently (zero channels / latents)
    # ControlNeXt cross-normalisation: paper | code | zero | none. Zero is the default because it had the lowest loss
    # and depth error of the four in `cinetune bench control` (benchmarks/results/control.md)
    norm: str = "zero"
    stats: str = "sample"  # ControlNeXt code-form statistics: sample | frame
    inject_block: int = 0  # ControlNeXt: hidden states after this block receive the control
    num_blocks: int = 2  # DiT-ControlNet copied blocks
    stride: int = 2  # DiT-ControlNet: block k*stride receives copy k
    clip_cache: int = 2000  # clips pre-encoded once (latents, text, conditions)

    def validate(self) -> None:
        from .model import CONTROL_METHODS

        if self.method not in CONTROL_METHODS:
            raise CinetuneError(f"control.method must be one of {', '.join(CONTROL_METHODS)}, got {self.method!r}")
        kinds_of(self.conditions, "control.conditions")
        if self.norm not in NORMS or self.stats not in ("sample", "frame"):
            raise CinetuneError(f"control.norm/stats: got {self.norm!r}/{self.stats!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise CinetuneError(f"control.dropout must be in [0, 1), got {self.dropout}")

    @staticmethod
    def reuse_settings(section: dict) -> dict:
        """A saved section without the options its method does not read (bench runs are reused across them)."""
        if section.get("method") == "controlnext":
            return section
        return {k: v for k, v in section.items() if k not in ("norm", "stats")}

    def module_options(self) -> dict:
        """The options of this method's module (the others belong to other control methods)."""
        return {"controlnext": dict(norm=self.norm, stats=self.stats, inject_block=self.inject_block),
                "dit-controlnet": dict(num_blocks=self.num_blocks, stride=self.stride)}.get(self.method, {})


PRESETS: dict[str, dict] = {
    # Control adapters on the frozen shipped toy-large. Equal budgets per method.
    "toy-control": dict(task="control", backbone="toy-large", init="toy-large",
                        output_dir="runs/toy-control", steps=400, batch_size=8,
                        data=dict(cache_path="runs/control-cache-17x64x64.safetensors"),
                        optim=dict(lr=1e-4, warmup_steps=50), checkpoint_every=250, validate_every=500),
    # The small conditional model of Scale-Adapter: toy-small with channel-concat control, all weights fine-tuned at
    # the full LR; per-kind dropout 0.5 so single conditions and pairs are as common as the full triple.
    "toy-small-control": dict(task="control", backbone="toy-small", init="toy-small",
                              output_dir="runs/toy-small-control", steps=2000, batch_size=8,
                              data=dict(cache_path="runs/control-cache-17x64x64.safetensors"),
                              control=dict(method="concat", dropout=0.5, base_lr_scale=1.0, clip_cache=1000),
                              optim=dict(lr=2e-4, warmup_steps=50), checkpoint_every=250, validate_every=500),
}
