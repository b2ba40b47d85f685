"""CLI contract: results on stdout, bad input -> one line on stderr and exit status 2."""

import subprocess
import sys

import numpy as np
import pytest

from cinetune.cli import main
from cinetune.errors import CinetuneError
from cinetune.io import read_video, write_video


def run(*args):
    return subprocess.run([sys.executable, "-m", "cinetune.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args", [
    ["generate", "--prompt", "x", "--model", "/nonexistent/model"],
    ["generate", "--prompt", "x", "--model", "toy-huge"],
    ["train", "base", "--preset", "nope"],
    ["train", "base", "--preset", "tiny", "--config", "/nonexistent.yaml"],
    ["train", "base", "--preset", "tiny", "optim.nope=1"],
    ["train", "base", "--preset", "tiny", "init=/nonexistent/weights"],
    ["train", "base", "--preset", "tiny", "checkpoint_every=0"],
    ["train", "base", "--preset", "tiny", "init=toy-large"],  # an 8-layer init for the 4-layer toy-small
    ["generate", "--prompt", "x", "--guidance", "nan"],
    ["generate", "--prompt", "x", "--width", "1032", "--height", "8", "--steps", "1"],  # beyond the rotary positions
    ["generate", "--prompt", "x", "--frames", "261", "--height", "8", "--width", "8", "--steps", "1"],
    ["generate", "--prompt", "x", "--out", "/proc/x.mp4", "--steps", "1"],  # unwritable: refused before sampling
    ["render-toy", "--n", "2", "--out", "x", "--frames", "40"],
    ["render-toy", "--n", "1", "--out", "x", "--frames", "7"],  # not 4k+1
    ["generate", "--prompt", "x", "--out", "x.avi", "--steps", "1"],  # a video type it does not write
    ["generate", "--prompt", "x", "--slot", "bogus=zzz", "--steps", "1"],  # a slot without an adapter
    ["render-toy", "--n", "-1", "--out", "x"],
    ["render-toy", "--n", "1", "--out", "x", "--max-actors", "99"],
    ["latent-stats", "--vae", "/nonexistent/vae"],
    ["latent-stats", "--vae", "x", "--clips", "0"],
    ["frobnicate"],
    # the second adversarial pass (values the fuzz test does not generate)
    ["render-toy", "--n", "1", "--out", "x", "--seed", "-5"],
    ["generate", "--prompt", "x", "--seed", str(2**70)],
    ["generate", "--prompt", "x", "--device", "abc"],
    ["demo", "--device", "cuda:7"],
    ["assets", "--jobs", "0", "--plan"],
    ["assets", "--threads", "-1", "--plan"],
    ["extract", "--kind", "canny", "--video", "missing.mp4", "--out", "e.txt"],  # refused before reading
    ["train", "base", "--preset", "tiny", "optim.lr=-1"],
    ["train", "base", "--preset", "tiny", "optim.lr=nan"],
    ["train", "base", "--preset", "tiny", "optim.schedule=bogus"],
    ["generate", "--prompt", "x", "--control-scale", "nan", "--adapter", "toy-large-controlnext"],
    ["generate", "--prompt", "x", "--identities", "toy-large-controlnext", "--identity", "x.png"],
    ["bench", "text-features", "--out", "/dev/null"],
    # the third pass
    ["generate", "--prompt", "x", "--out", ""],  # Path("") would be the working directory
    ["render-toy", "--n", "1", "--out", ""],
    ["eval", "--generated", ""],
    ["eval", "--generated", "x", "--metrics", ",,"],
    ["train", "base", "--preset", "tiny", "seed=-1"],
    ["train", "ingredients", "--stage1", ""],
    ["assets", "--only", "", "--plan"],
    # the fourth pass
    ["generate", "--prompt", "x", "--model", "toy-small", "--adapter", "toy-large-4step"],  # a student of another base
    ["extract", "--kind", "hed", "--video", "missing.mp4", "--out", "h.mp4", "--edges", "sobel"],
    ["generate", "--prompt", "x", "--scheduler", "heun"],
    ["generate", "--prompt", "x", "--model", "toy-large-4step", "--scheduler", "unipc"],  # a student's own sampler
])
def test_bad_input_is_one_line_and_status_2(args):
    r = run(*args)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("cinetune: error:"), r.stderr
    assert "Traceback" not in r.stderr


def test_latent_stats_writes_per_frame_statistics_the_codec_reads(tmp_path, capsys):
    from diffusers import AutoencoderKLWan

    from cinetune.backbones import LatentCodec, get_preset
    from cinetune.backbones.codec import FRAME_STATS

    vae = AutoencoderKLWan(**get_preset("toy-small").vae)
    vae.save_pretrained(tmp_path / "vae", safe_serialization=True)
    assert main(["latent-stats", "--vae", str(tmp_path / "vae"), "--clips", "2", "--frames", "9"]) == 0
    assert str(tmp_path / "vae" / FRAME_STATS) in capsys.readouterr().out
    codec = LatentCodec.from_dir(vae, tmp_path / "vae")
    assert codec.per_frame and codec.mean.shape == (1, 16, 3, 1, 1)


def test_unreadable_config_is_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1, 2\n")
    assert main(["train", "base", "--preset", "tiny", "--config", str(bad)]) == 2
    bad.write_text("- a list\n")
    assert main(["train", "base", "--preset", "tiny", "--config", str(bad)]) == 2


def test_generate_from_a_saved_diffusers_directory(tiny_wan_dir, tmp_path):
    out = tmp_path / "out.mp4"
    r = run("generate", "--prompt", "a red circle moves left", "--model", str(tiny_wan_dir), "--frames", "5",
            "--height", "32", "--width", "32", "--steps", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    video, fps = read_video(out)
    assert video.shape == (5, 32, 32, 3) and fps == 16  # the checkpoint's own frame rate (Wan: 16 fps)
    bad = run("generate", "--prompt", "x", "--model", str(tiny_wan_dir), "--frames", "6", "--height", "32",
              "--width", "32", "--out", str(tmp_path / "bad.mp4"))
    assert bad.returncode == 2 and "frames" in bad.stderr and not (tmp_path / "bad.mp4").exists()


def test_generate_with_another_scheduler(tiny_wan_dir, tmp_path):
    kw = ["--prompt", "a red circle", "--model", str(tiny_wan_dir), "--frames", "5", "--height", "32", "--width", "32",
          "--steps", "3", "--seed", "1"]
    for name in ("euler", "unipc"):
        assert main(["generate", *kw, "--scheduler", name, "--out", str(tmp_path / f"{name}.mp4")]) == 0
    assert main(["generate", *kw, "--out", str(tmp_path / "own.mp4")]) == 0
    own, euler, unipc = (read_video(tmp_path / f"{n}.mp4")[0] for n in ("own", "euler", "unipc"))
    assert np.array_equal(own, euler) and not np.array_equal(own, unipc)  # the checkpoint's own is Euler


def test_render_toy_writes_every_annotation(tmp_path):
    import json

    from safetensors.numpy import load_file

    assert main(["render-toy", "--n", "2", "--out", str(tmp_path), "--frames", "9", "--height", "32",
                 "--width", "32"]) == 0
    meta = [json.loads(ln) for ln in (tmp_path / "metadata.jsonl").read_text().splitlines()]
    assert len(meta) == 2 and all(m["caption"] for m in meta)
    for kind in ("clips", "depth", "edges", "segmentation", "instance", "pose", "face_masks"):
        v, _ = read_video(tmp_path / kind / "000001.mp4")
        assert v.shape == (9, 32, 32, 3), kind
    arrays = load_file(tmp_path / "annotations" / "000001.safetensors")
    assert arrays["keypoints"].shape[-1] == 3 and arrays["face_boxes"].shape[-1] == 4
    r = run("eval", "--generated", str(tmp_path / "clips"), "--features", "bogus", "--out", str(tmp_path / "ev"))
    assert r.returncode == 2 and "not a local CLIP directory" in r.stderr  # never a download attempt
    before = (tmp_path / "metadata.jsonl").read_text()
    assert main(["render-toy", "--n", "1", "--out", str(tmp_path)]) == 2  # an existing set is not overwritten
    assert (tmp_path / "metadata.jsonl").read_text() == before


def test_video_round_trip_and_corrupt_files(tmp_path):
    v = np.random.default_rng(0).integers(0, 255, (9, 32, 32, 3), dtype=np.uint8)
    write_video(tmp_path / "a.gif", v)
    back, _ = read_video(tmp_path / "a.gif")
    assert back.shape == v.shape
    (tmp_path / "corrupt.mp4").write_bytes(b"not a video at all")
    with pytest.raises(CinetuneError, match="cannot read video"):
        read_video(tmp_path / "corrupt.mp4")
    with pytest.raises(CinetuneError, match="not found"):
        read_video(tmp_path / "missing.mp4")
    with pytest.raises(CinetuneError):
        write_video(tmp_path / "x.avi", v)


def test_an_unexpected_exception_is_one_line_and_status_1(monkeypatch, capsys):
    import cinetune.cli as cli

    def boom(a):
        raise RuntimeError("kaput\nsecond line")

    monkeypatch.setattr(cli, "cmd_render_toy", boom)
    monkeypatch.delenv("CINETUNE_DEBUG", raising=False)
    parser = cli.build_parser

    def patched():
        p = parser()
        p._subparsers._group_actions[0].choices["render-toy"].set_defaults(fn=boom)
        return p

    monkeypatch.setattr(cli, "build_parser", patched)
    assert main(["render-toy", "--n", "1", "--out", "x"]) == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "internal error in `render-toy" in err[0] and "kaput" in err[0] and "CINETUNE_DEBUG" in err[0]
    monkeypatch.setenv("CINETUNE_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["render-toy", "--n", "1", "--out", "x"])


def test_init_with_truncated_or_pickle_only_weights_is_one_line(tmp_path):
    from cinetune.backbones.presets import assets_root

    src = assets_root() / "toy-small" / "transformer"
    for name, weights, data in (("truncated", "diffusion_pytorch_model.safetensors", None),
                                ("pickle-only", "diffusion_pytorch_model.bin", b"not a pickle")):
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text((src / "config.json").read_text())
        (d / weights).write_bytes(data if data is not None else (src / weights).read_bytes()[:1000])
        r = run("train", "base", "--preset", "tiny", f"init={d}", f"output_dir={tmp_path / ('run-' + name)}")
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("cinetune: error: cannot load"), r.stderr


def test_demo_shows_every_shipped_method(tmp_path):
    """One sampling step: the demo's grids (text-to-video, control, teacher vs student, Ingredients) are all written
    from the shipped models."""
    r = run("demo", "--steps", "1", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    for name in ("t2v-grid.gif", "control-grid.gif", "distill-grid.gif", "ingredients-grid.gif"):
        assert read_video(tmp_path / name)[0].shape[0] == 17, name
    assert "student (4 steps)" in r.stdout and "Ingredients" in r.stdout


def test_generate_with_lora_files(tiny_wan_dir, tmp_path, capsys):
    from safetensors.torch import save_file

    from cinetune.backbones import load_backbone
    from tests.core.test_lora_file import _self_attention_lora

    save_file(_self_attention_lora(load_backbone(str(tiny_wan_dir)).transformer), str(tmp_path / "style.safetensors"))
    base = ["generate", "--prompt", "a red circle moves left", "--model", str(tiny_wan_dir), "--frames", "5",
            "--height", "32", "--width", "32", "--steps", "2"]
    outs = {}
    for name, extra in [("bare", []), ("off", ["--lora", f"{tmp_path / 'style.safetensors'}:0"]),
                        ("on", ["--lora", str(tmp_path / "style.safetensors")])]:
        assert main(base + extra + ["--out", str(tmp_path / f"{name}.mp4")]) == 0
        outs[name] = (tmp_path / f"{name}.mp4").read_bytes()
    assert outs["off"] == outs["bare"] != outs["on"]  # scale 0 is the base, byte for byte
    assert main(base + ["--lora", str(tmp_path / "none.safetensors"), "--out", str(tmp_path / "x.mp4")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_per_condition_control_flags():
    from cinetune.cli import _per_condition

    given = {"canny": None, "depth": None}
    assert _per_condition(None, 1.0, "control_scale", given) == 1.0
    assert _per_condition(["0.7"], 1.0, "control_scale", given) == 0.7
    assert _per_condition(["0.7", "depth=0.2"], 1.0, "control_scale", given) == {"canny": 0.7, "depth": 0.2}
    for bad, msg in [(["pose=1"], "pose, which is not among"), (["=1"], "KIND=NUMBER"), (["depth=x"], "a number"),
                     (["depth=nan"], "finite")]:
        with pytest.raises(CinetuneError, match=msg):
            _per_condition(bad, 1.0, "control_scale", given)


def test_generate_memory_flags(tiny_wan_dir, tmp_path, capsys):
    base = ["generate", "--prompt", "a red circle", "--model", str(tiny_wan_dir), "--frames", "5", "--height", "32",
            "--width", "32", "--steps", "2"]
    assert main(base + ["--dtype", "bf16", "--offload", "block", "--vae-tiling", "--release-text-encoder",
                        "--out", str(tmp_path / "a.mp4")]) == 0
    assert read_video(tmp_path / "a.mp4")[0].shape == (5, 32, 32, 3)
    assert main(base + ["--fp8", "--out", str(tmp_path / "b.mp4")]) == 2 and not (tmp_path / "b.mp4").exists()
    assert "bf16 or fp16" in capsys.readouterr().err
