from cinetune.bench.gpu import forward_flops, peak_flops, run
from cinetune.bench.memory import SHAPES


def test_the_gpu_bench_runs_its_tiny_configuration_here(tmp_path):
    text = run(tmp_path, quick=True).read_text()
    rows = [ln for ln in text.splitlines() if ln.startswith("| 1 |") or ln.startswith("| 2 |")]
    assert len(rows) == 2 and "tiny configuration" in text and "| - |" in rows[0]  # no MFU without a known card


def test_flops_and_peaks():
    c = SHAPES["wan2.1-1.3b"]
    f1, f2 = forward_flops(c, 32760), forward_flops(c, 2 * 32760)
    assert 2 * f1 < f2 < 4 * f1  # linear layers double, attention quadruples
    assert 2.0e14 < f1 < 2.0e15  # ~2.6 B MACs per token of linear layers x 32,760 tokens, plus attention
    assert peak_flops("NVIDIA H200") == 989e12 and peak_flops("NVIDIA H100 PCIe") == 756e12 and peak_flops("x") is None
