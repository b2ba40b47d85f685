import math

from cinetune.bench.shipped_adapters import run


def test_quick_run_scores_every_shipped_adapter(tmp_path):
    text = run(tmp_path, quick=True).read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "F1" not in line]
    assert [r.split(" | ")[0] for r in rows] == ["| rendered clips (the readers' own accuracy)",
                                                 "| rendered clips through the toy VAE (the ceiling)",
                                                 "| toy-large alone", "| `toy-large-controlnext`",
                                                 "| `toy-large-scale-adapter`"]
    assert float(rows[0].split(" | ")[1]) == 1.0  # canny of a clip against itself
    for r in rows:
        canny, depth = (float(x) for x in r.split(" | ")[1:3])
        assert 0 <= canny <= 1 and math.isfinite(depth)
