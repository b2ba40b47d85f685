import torch

from cinetune.methods.distill.bench import speed, speed_lines, speed_targets
from cinetune.methods.registry import load_adapter
from cinetune.pipelines import TextToVideoPipeline


def test_speed_times_every_setting_and_leaves_the_teacher_unchanged():
    base = TextToVideoPipeline.from_pretrained("toy-large", device="cpu")
    before = {k: v.clone() for k, v in base.backbone.transformer.state_dict().items()}
    times = speed(base, load_adapter("toy-large-4step"), teacher_steps=2, repeats=1)
    assert list(times) == ["teacher (2 steps x CFG)", "teacher at 4 steps x CFG", "student",
                           "student + frame interpolation"]
    assert [r["calls"] for r in times.values()] == [4, 8, 4, 4]
    assert all(0 < r["denoise_s"] < r["whole_s"] for r in times.values())  # whole adds text encoding and decoding
    after = base.backbone.transformer.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the student was attached and removed
    lines = speed_lines(times, 1)
    assert len([ln for ln in lines if ln.startswith("| ")]) == 1 + len(times)  # header + one row per setting
    targets = speed_targets(times, 2)
    assert len(targets) == 2 and all(t.endswith(("| yes |", "| no |")) for t in targets)
