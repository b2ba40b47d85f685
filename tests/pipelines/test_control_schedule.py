"""Per-condition control: a scale and window per condition kind, any subset of the trained kinds, and methods that
cannot weigh their conditions apart refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cinetune.errors import CinetuneError
from cinetune.pipelines import ControlledPipeline
from cinetune.pipelines.adapted import _StepScales
from cinetune.pipelines.control_schedule import ControlSchedule, split_weights
from tests.pipelines.test_adapted import KW, controls, pipe, small  # noqa: F401  (fixtures)


def test_schedule_per_kind_values_defaults_and_errors():
    s = ControlSchedule.of(["canny", "depth"], {"depth": 0.5}, 0.0, {"canny": 0.5})
    assert s.weights(0.0) == {"canny": 1.0, "depth": 0.5} and s.weights(0.5) == {"canny": 0.0, "depth": 0.5}
    assert not s.uniform() and ControlSchedule.of(["canny", "depth"], 0.7).uniform()
    assert s.uniform(["canny"]) and not s.uniform(["canny", "depth"])
    with pytest.raises(CinetuneError, match="pose, which is not among"):
        ControlSchedule.of(["canny"], {"pose": 1.0})
    with pytest.raises(CinetuneError, match="for depth"):
        ControlSchedule.of(["canny", "depth"], 1.0, {"depth": 0.8}, {"depth": 0.6})
    assert split_weights({"a": 0.8, "b": 0.4, "c": 0.0}) == (0.8, {"a": 1.0, "b": 0.5, "c": 0.0})


class _Recorder:
    def __init__(self, weighs: bool):
        self.calls = []
        if weighs:
            self.set_condition_weights = self.calls.append


class _Model:
    def __init__(self, kinds, method="m"):
        self.kinds, self.method = kinds, method


def test_step_scales_set_shares_only_when_they_change_and_refuse_joint_methods():
    sched = ControlSchedule.of(["canny", "pose"], {"canny": 0.5}, 0.0, {"pose": 0.5})
    plain = {"scale": 1.0, "start": 0.0, "end": 1.0}
    rec, other = _Recorder(True), _Recorder(False)
    steer = _StepScales([_Model(["canny", "pose"]), _Model([])], [rec, other], sched, plain)
    assert [steer(f) for f in (0.0, 0.25, 0.5, 0.75)] == [[1.0, 1.0], [1.0, 1.0], [0.5, 1.0], [0.5, 1.0]]
    assert rec.calls == [{"canny": 0.5, "pose": 1.0}, {"canny": 1.0, "pose": 0.0}]  # pose leads, then canny alone
    with pytest.raises(CinetuneError, match="takes its conditions together"):
        _StepScales([_Model(["canny", "pose"], "joint")], [_Recorder(False)], sched, plain)


def _acting(method, pipe):
    """A control model with random weights everywhere (untrained ones are an exact identity)."""
    model = small(method, pipe, ["depth", "canny"])
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in model.modules().values():
            for p in m.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=g))
        if method == "concat":
            att = model.attach(pipe.backbone)
            w = att.inner.patch_embedding.weight
            w.add_(0.05 * torch.randn(w.shape, generator=g))
            model.patch = {k: v.detach().clone() for k, v in att.inner.patch_embedding.state_dict().items()}
            att.remove()
    return model


@pytest.mark.parametrize("method", ["controlnext", "dit-controlnet", "concat"])
def test_per_condition_scales_subsets_and_windows(method, pipe, controls):  # noqa: F811
    ctl = ControlledPipeline(pipe, _acting(method, pipe))
    run = lambda c=controls, **kw: ctl("a red circle", controls=c, **KW, **kw).videos  # noqa: E731
    full = run()
    np.testing.assert_array_equal(run(control_scale={"depth": 1.0, "canny": 1.0}), full)  # same as one number
    canny_only = run({"canny": controls["canny"]})  # a subset of the trained kinds
    assert not np.array_equal(canny_only, full)
    np.testing.assert_array_equal(run(control_scale={"depth": 0.0}), canny_only)  # scale 0 = the kind left out
    np.testing.assert_array_equal(run(control_end={"depth": 1 / 3}, control_start={"depth": 0.0}),
                                  run(control_end={"depth": 1 / 3}))
    late = run(control_start={"depth": 0.5})
    assert not np.array_equal(late, full) and not np.array_equal(late, canny_only)
    with pytest.raises(CinetuneError, match="among depth, canny"):
        run({"pose": controls["depth"]})
