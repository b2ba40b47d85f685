"""Sampling schedulers for flow-matching models (Wan, the toy DiTs): Euler, or a multistep solver that reaches the same
picture in fewer steps. Each is diffusers' scheduler, built with the model's own flow shift."""

from __future__ import annotations

import copy

from ..errors import CinetuneError

SCHEDULERS = ("euler", "unipc", "dpm++")


def flow_shift(scheduler) -> float:
    """The flow shift of a flow-matching scheduler (FlowMatchEuler's `shift`, or a multistep solver's `flow_shift`
    with flow sigmas, as Wan's releases ship UniPC); a one-line error for a model that is not flow matching."""
    cfg = scheduler.config
    if type(scheduler).__name__ == "FlowMatchEulerDiscreteScheduler":
        return float(cfg.shift)
    if cfg.get("use_flow_sigmas") and cfg.get("prediction_type") == "flow_prediction":
        return float(cfg.flow_shift)
    raise CinetuneError(f"this model samples with {type(scheduler).__name__} (not flow matching): the scheduler "
                        f"options ({', '.join(SCHEDULERS)}) are for flow-matching models (Wan, the toy models)")


def make_scheduler(name: str, base):
    """A fresh `name` scheduler for the model whose own scheduler is `base` (same training timesteps and flow shift;
    a copy of `base` itself, with every setting its release ships, when it already is that kind). `unipc` is what
    Wan's releases sample with; `dpm++` is DPM-Solver++ of order 2."""
    from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    if name not in SCHEDULERS:
        raise CinetuneError(f"unknown scheduler {name!r}; choose from {', '.join(SCHEDULERS)}")
    shift, n = flow_shift(base), int(base.config.num_train_timesteps)
    kind = {"euler": FlowMatchEulerDiscreteScheduler, "unipc": UniPCMultistepScheduler,
            "dpm++": DPMSolverMultistepScheduler}[name]
    if type(base) is kind and (name != "dpm++" or base.config.algorithm_type == "dpmsolver++"):
        return copy.deepcopy(base)
    if name == "euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=n, shift=shift)
    flow = dict(num_train_timesteps=n, prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift)
    if name == "unipc":
        return UniPCMultistepScheduler(**flow)
    return DPMSolverMultistepScheduler(**flow, algorithm_type="dpmsolver++", solver_order=2)
