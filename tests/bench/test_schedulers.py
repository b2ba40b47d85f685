import torch

from cinetune.bench.schedulers import _verdict, rel_rmse, run


def test_distance_is_relative_per_sample():
    ref = torch.randn(2, 4, 3, 4, 4)
    moved = ref.clone()
    moved[1] += 0.5 * ref.std()
    assert torch.allclose(rel_rmse(moved, ref), torch.tensor([0.0, 0.5]), atol=1e-6)


def test_verdict_names_the_fewest_steps_at_the_baselines_distance():
    ref = torch.zeros(3, 1, 1, 1, 2)
    ref[:, 0, 0, 0, 0] = 1.0  # std > 0
    at = lambda d: ref + d * ref.std()  # noqa: E731  (a sample at relative distance d)
    lat = {("euler", 25): at(0.2), ("unipc", 8): at(0.4), ("unipc", 16): at(0.19), ("unipc", 20): at(0.1),
           ("dpm++", 12): at(0.3)}
    v = _verdict({s: rel_rmse(x, ref) for s, x in lat.items()}, ("euler", 25))
    assert "unipc at 16 steps (0.64x the calls)" in v and "dpm++: none of its settings here" in v


def test_quick_run_writes_the_table(tmp_path):
    text = run(tmp_path, quick=True, model="toy-small").read_text()
    assert "| unipc | 4 | 8 |" in text and "| euler | 4 | 8 |" in text and "As close to the reference" in text
