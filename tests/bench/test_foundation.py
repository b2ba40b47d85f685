import re

import torch

from cinetune.backbones import load_backbone
from cinetune.bench.foundation import _train_step_row, cpu_bf16_support


def test_training_step_row_times_fp32_and_bf16_and_leaves_no_gradients():
    b = load_backbone("toy-small", random_init=True)
    with torch.no_grad():  # as in the bench's model section
        what, measured, how = _train_step_row(b, 1)
    fp32, bf16, ratio = map(float, re.fullmatch(r"(\S+) / (\S+) s \(bf16 (\S+)x the speed\)", measured).groups())
    assert fp32 > 0 and bf16 > 0 and ratio > 0  # the ratio is of the unrounded times
    assert what.startswith("toy-small training step (batch 1") and cpu_bf16_support() in how and all(p.grad is None for p in b.transformer.parameters())
    assert not b.transformer.training
