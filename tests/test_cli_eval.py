"""`cinetune extract` and `cinetune eval`: outputs, reports and one-line errors naming the bad file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cinetune.cli import main
from cinetune.io import read_video, write_video
from cinetune.toyworld import render_clip


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy")
    assert main(["render-toy", "--n", "3", "--out", str(out), "--frames", "9", "--max-actors", "1"]) == 0
    return out


def test_extract_canny_and_exact_depth(toy_dir, tmp_path, capsys):
    clip = toy_dir / "clips" / "000001.mp4"
    assert main(["extract", "--kind", "canny", "--video", str(clip), "--out", str(tmp_path / "c.mp4")]) == 0
    v, _ = read_video(tmp_path / "c.mp4")
    assert v.shape == (9, 64, 64, 3)
    assert main(["extract", "--kind", "depth", "--backend", "exact", "--video", str(clip),
                 "--out", str(tmp_path / "d.mp4")]) == 0
    d, _ = read_video(tmp_path / "d.mp4")
    ref, _ = read_video(toy_dir / "depth" / "000001.mp4")
    assert np.abs(d.astype(int) - ref.astype(int)).mean() < 2  # the exact depth render-toy wrote


def test_extract_errors(toy_dir, tmp_path):
    assert main(["extract", "--kind", "thermal", "--video", str(toy_dir / "clips" / "000000.mp4"),
                 "--out", str(tmp_path / "x.mp4")]) == 2
    assert main(["extract", "--kind", "canny", "--video", str(tmp_path / "missing.mp4"),
                 "--out", str(tmp_path / "x.mp4")]) == 2
    other = tmp_path / "elsewhere.mp4"
    write_video(other, render_clip(0)[0].video)
    assert main(["extract", "--kind", "depth", "--backend", "exact", "--video", str(other),
                 "--out", str(tmp_path / "x.mp4")]) == 2  # no render-toy annotations next to it
    assert not (tmp_path / "x.mp4").exists()


def test_eval_writes_json_and_markdown(toy_dir, tmp_path, capsys):
    gen = tmp_path / "gen"
    for p in sorted((toy_dir / "clips").glob("*.mp4")):
        v, _ = read_video(p)
        write_video(gen / p.name, np.clip(v.astype(int) + 20, 0, 255).astype(np.uint8))
    out = tmp_path / "report.json"
    assert main(["eval", "--generated", str(gen), "--reference", str(toy_dir / "clips"),
                 "--metrics", "psnr,ssim,dynamic,saturation,adherence", "--conditions", "canny",
                 "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    s = rep["summary"]
    assert 15 < s["psnr"] < 40 and 0 < s["ssim"] < 1 and s["oversaturation"] >= 0 and 0 < s["canny_f1"] <= 1
    assert len(rep["per_video"]) == 3 and rep["per_video"][0]["name"] == "000000"
    assert "| psnr |" in out.with_suffix(".md").read_text()
    assert main(["eval", "--generated", str(toy_dir / "clips"), "--reference", str(toy_dir / "clips"),
                 "--metrics", "psnr,ssim", "--out", str(tmp_path / "self.json")]) == 0
    s = json.loads((tmp_path / "self.json").read_text())["summary"]
    assert s["psnr"] == 100.0 and s["ssim"] == pytest.approx(1.0)


def test_eval_errors_name_the_problem(toy_dir, tmp_path, capsys):
    few = tmp_path / "few"
    write_video(few / "a.mp4", read_video(toy_dir / "clips" / "000000.mp4")[0])
    assert main(["eval", "--generated", str(few), "--reference", str(toy_dir / "clips"), "--metrics", "psnr",
                 "--out", str(tmp_path / "r.json")]) == 2
    assert "1 vs 3" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.mp4").write_bytes(b"not a video")
    assert main(["eval", "--generated", str(bad), "--metrics", "dynamic", "--out", str(tmp_path / "r.json")]) == 2
    assert "broken.mp4" in capsys.readouterr().err
    assert main(["eval", "--generated", str(toy_dir / "clips"), "--metrics", "fid", "--out",
                 str(tmp_path / "r.json")]) == 2
    assert "unknown metric" in capsys.readouterr().err
    assert main(["eval", "--generated", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r.json")]) == 2
    assert not (tmp_path / "r.json").exists()


def test_eval_refuses_a_named_metric_its_inputs_cannot_give(toy_dir, tmp_path, capsys):
    clips = str(toy_dir / "clips")
    assert main(["eval", "--generated", clips, "--metrics", "psnr", "--out", str(tmp_path / "r.json")]) == 2
    assert "metric psnr needs --reference" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_reports_are_strict_json_with_null_for_undefined_numbers(tmp_path):
    from cinetune.io import write_json

    write_json(tmp_path / "r.json", {"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": 2.5}})
    text = (tmp_path / "r.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [1.0, None], "c": {"d": 2.5}}
