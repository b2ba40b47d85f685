"""Config section and training presets of adaptive video distillation (`cinetune train distill`, `cinetune train
interpolator`); docs/distillation.md says where each default comes from."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import CinetuneError


def timestep_list(text: str) -> list[float]:
    """'1000,900,757,522' -> [1000.0, 900.0, 757.0, 522.0] (strictly decreasing, in (0, 1000])."""
    try:
        ts = [float(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise CinetuneError(f"distill.student_timesteps: expected a comma list of timesteps, got {text!r}") from None
    if not ts or any(not 0 < t <= 1000 for t in ts) or any(a <= b for a, b in zip(ts, ts[1:])):
        raise CinetuneError(f"distill.student_timesteps must be strictly decreasing values in (0, 1000], got {text!r}")
    return ts


@dataclass
class DistillConfig:
    """DMD2 (student, teacher = real score, critic = fake score) + the paper's adaptive regression loss (Eq. 5-7)
    and temporal regularisation (Eq. 8). Where the paper and its public code differ, both are options; the paper's
    value is the default."""

    # Student timesteps before the shift (paper Sec. 4 / public code); shifted with `shift` like the teacher's.
    student_timesteps: str = "1000,900,757,522"
    shift: float = 0.0  # 0: the backbone's own flow shift
    guidance: float = 5.0  # the teacher's classifier-free guidance in the DMD gradient (paper: 5.0)
    generator_every: int = 5  # two-timescale rule: the critic updates every step, the student every this many
    critic_lr_scale: float = 1.0  # critic LR = optim.lr * this (FastVideo uses 4x)
    dmd_t_min: float = 0.02  # the DMD gradient's noise level u ~ U(min, max) before the shift
    dmd_t_max: float = 0.98
    # Adaptive regression (Eq. 5-7): weight 2.0 (paper; code 1.0), EMA 0.95, slope k = 3.
    regression: str = "adaptive"  # off | plain (the "+RegLoss" ablation) | adaptive
    regression_weight: float = 2.0
    regression_ema: float = 0.95
    regression_k: float = 3.0
    regression_target: str = "epsilon"  # epsilon (paper Eq. 5) | flow (public code: velocity eps - x0)
    ema_order: str = "previous"  # previous (paper Eq. 7 uses the EMA before this step) | current (code: after update)
    # Temporal regularisation (Eq. 8): -log(mean frame variance + eps), weight 0.05, dropped while below the
    # truncation threshold (paper "~0.6"; public code 0.8).
    temporal_weight: float = 0.05
    temporal_threshold: float = 0.6
    temporal_eps: float = 1e-6
    # Collapse guards on validation samples (methods.distill.guards); early_stop > 0 stops after that many
    # validations without a better score and keeps the best checkpoint as final/.
    guard_prompts: int = 4
    teacher_steps: int = 30  # the teacher's sampler steps (with guidance) for the guards' reference videos
    early_stop: int = 0
    # The latent frame interpolator (`cinetune train interpolator`; paper Sec. 3.4, appendix 8): widths of its three
    # U-Net levels, the released config's.
    interpolator_channels: str = "32,64,128"
    # A trained interpolator bundled into the exported student (a run, its final/, or a shipped name; "" = none), so
    # the student samples with --interpolate; `cinetune distill add-interpolator` does the same afterwards.
    interpolator: str = ""
    half_steps: int = 2  # steps at half the frame rate with interpolation (paper: the first 2 of 4)

    def input_dirs(self) -> list:
        """Weights a run depends on besides the teacher: the bundled interpolator's."""
        if not self.interpolator:
            return []
        from .interpolator import find_interpolator

        return [find_interpolator(self.interpolator)]

    def widths(self) -> list[int]:
        try:
            w = [int(x) for x in self.interpolator_channels.split(",") if x.strip()]
        except ValueError:
            w = []
        if not w or min(w) < 1:
            raise CinetuneError("distill.interpolator_channels: expected a comma list of positive widths, got "
                                f"{self.interpolator_channels!r}")
        return w

    def timesteps(self) -> list[float]:
        return timestep_list(self.student_timesteps)

    def validate(self) -> None:
        self.timesteps(), self.widths()
        if not 1 <= self.half_steps < len(self.timesteps()):
            raise CinetuneError(f"distill.half_steps must be in [1, {len(self.timesteps()) - 1}] (a full-rate step "
                                f"must remain), got {self.half_steps}")
        if self.regression not in ("off", "plain", "adaptive"):
            raise CinetuneError(f"distill.regression must be off, plain or adaptive, got {self.regression!r}")
        if self.regression_target not in ("epsilon", "flow") or self.ema_order not in ("previous", "current"):
            raise CinetuneError("distill.regression_target must be epsilon or flow and distill.ema_order previous or "
                                f"current, got {self.regression_target!r}, {self.ema_order!r}")
        if not 0.0 <= self.dmd_t_min < self.dmd_t_max <= 1.0:
            raise CinetuneError(f"need 0 <= distill.dmd_t_min < dmd_t_max <= 1, got {self.dmd_t_min}, {self.dmd_t_max}")
        if self.generator_every < 1 or self.guidance < 1.0 or self.shift < 0 or not 0.0 <= self.regression_ema < 1.0:
            raise CinetuneError("distill: need generator_every >= 1, guidance >= 1, shift >= 0 and 0 <= "
                                f"regression_ema < 1, got {self.generator_every}, {self.guidance}, {self.shift}, "
                                f"{self.regression_ema}")
        if min(self.regression_weight, self.temporal_weight, self.temporal_eps, self.critic_lr_scale,
               self.regression_k) < 0 or min(self.guard_prompts, self.teacher_steps) < 1 or self.early_stop < 0:
            raise CinetuneError("distill: weights, eps, k and critic_lr_scale must be >= 0, guard_prompts and "
                                "teacher_steps >= 1 and early_stop >= 0")


PRESETS: dict[str, dict] = {
    # The shipped 4-step student of toy-large: every term of the paper on, its hyperparameters; the LRs are the
    # toy's (a from-scratch toy teacher tolerates far larger steps than Wan's 2e-6).
    "toy-large-4step": dict(task="distill", backbone="toy-large", init="toy-large", output_dir="runs/toy-large-4step",
                            steps=1500, batch_size=4, ema_decay=0.99, mixed_precision="auto",
                            distill=dict(interpolator="toy-interpolator"),
                            data=dict(latent_cache=6000, cache_path="runs/latents-17x64x64.safetensors"),
                            optim=dict(lr=2e-5, warmup_steps=20, grad_clip=10.0), checkpoint_every=250,
                            validate_every=250, num_validation=4, validation_steps=4),
    "toy-interpolator": dict(task="interpolator", backbone="toy-large", output_dir="runs/toy-interpolator",
                             steps=3000, batch_size=32, data=dict(latent_cache=2000, cache_path="runs/latents-17x64x64.safetensors"),
                             optim=dict(lr=1e-3, warmup_steps=50), checkpoint_every=500, validate_every=1000),
    # Seconds-long runs for tests.
    "tiny-distill": dict(task="distill", backbone="toy-small", init="", output_dir="runs/tiny-distill", steps=4,
                         batch_size=2, data=dict(frames=5, height=32, width=32, size=8, latent_cache=8),
                         distill=dict(generator_every=2, guard_prompts=1),
                         optim=dict(lr=1e-4, warmup_steps=0), checkpoint_every=2, num_validation=1,
                         validation_steps=2),
    "tiny-interpolator": dict(task="interpolator", backbone="toy-small", output_dir="runs/tiny-interpolator", steps=4,
                              batch_size=2, data=dict(frames=9, height=32, width=32, size=8, latent_cache=8),
                              distill=dict(interpolator_channels="8,16"), optim=dict(lr=1e-3, warmup_steps=0),
                              checkpoint_every=2, num_validation=1),
}
