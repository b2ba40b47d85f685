"""The UI's engine: one loaded model, any combination in one request, the shown command reproducing the file."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from cinetune.errors import CinetuneError
from cinetune.ui import ConditionWindow, Request, shipped_adapters

PROMPT = "A red circle moves to the right on a plain navy backdrop."


def _cli_bytes(command: str, out: Path) -> bytes:
    """Run the shown command (with --out redirected) through the CLI in this process; its file's bytes."""
    from cinetune.cli import main

    argv = shlex.split(command)
    assert argv[:2] == ["cinetune", "generate"]
    argv = argv[2:]
    argv[argv.index("--out") + 1] = str(out)
    assert main(["generate", *argv]) == 0
    return out.read_bytes()


def test_shipped_adapters_by_role():
    large = shipped_adapters("toy-large")
    assert "toy-large-controlnext" in large["control"] and "toy-large-scale-adapter" in large["control"]
    assert large["identities"] == ["toy-large-ingredients"] and large["student"] == ["toy-large-4step"]
    small = shipped_adapters("toy-small")
    assert small == {"control": ["toy-small-control"], "identities": [], "student": []}


@pytest.mark.parametrize("scheduler", [None, "unipc"])
def test_text_to_video_matches_its_command(studio, tmp_path, scheduler):
    first = studio.pipe
    res = studio.generate(Request(prompt=PROMPT, steps=2, seed=3, scheduler=scheduler))
    assert studio.pipe is first  # one model, reused
    assert res.columns == ["result"] and res.seconds > 0 and res.video.is_file() and res.grid.is_file()
    assert "--steps 2" in res.command and "--seed 3" in res.command
    assert ("--scheduler" in res.command) == (scheduler is not None)
    assert _cli_bytes(res.command, tmp_path / "cli.mp4") == res.video.read_bytes()


def test_every_panel_in_one_request_matches_its_command(studio, uploads, tmp_path):
    """Control extracted from a reference (one condition weakened), two identities and the 4-step student."""
    req = Request(prompt=uploads["prompt"], steps=2, adapter="toy-large-controlnext",
                  control_from=str(uploads["reference"]), kinds=["canny", "depth", "pose"],
                  windows={"depth": ConditionWindow(0.5, 0.0, 1.0), "pose": ConditionWindow(1.0, 0.0, 0.75)},
                  identities="toy-large-ingredients", identity_images=[str(p) for p in uploads["faces"]],
                  student="toy-large-4step", compare_base=True)
    res = studio.generate(req)
    assert res.columns == ["canny", "depth", "pose", "reference faces", "base, no adapters", "result"]
    assert len(res.faces) == 2 and res.faces[0].dtype.name == "uint8" and res.faces[0].shape[-1] == 3
    for flag in ("--adapter toy-large-4step", "--adapter toy-large-controlnext", "--control-scale depth=0.5",
                 "--control-end pose=0.75", "--identities toy-large-ingredients", "--kinds canny,depth,pose"):
        assert flag in res.command
    assert "--steps" not in res.command and "--guidance" not in res.command  # the student's own
    inputs = res.video.parent / "inputs"
    assert str(inputs / "reference.mp4") in res.command and (inputs / "face-1.png").is_file()
    assert _cli_bytes(res.command, tmp_path / "cli.mp4") == res.video.read_bytes()
    from cinetune.io import read_video

    grid = read_video(res.grid)[0]
    assert grid.shape[2] == 6 * studio.preset.width


def test_uploaded_condition_video_and_interpolation_refused_with_it(studio, uploads, tmp_path):
    """One uploaded condition (a subset of what the adapter was trained on) drives Scale-Adapter; the student's
    frame interpolation with a condition video is refused (half-rate steps have no condition frames)."""
    from cinetune.conditions import get_extractor
    from cinetune.io import read_video, write_video

    depth = write_video(tmp_path / "depth.mp4", get_extractor("depth", "toy")(read_video(uploads["reference"])[0]))
    req = Request(prompt=uploads["prompt"], steps=2, adapter="toy-large-scale-adapter",
                  control_videos={"depth": str(depth)})
    res = studio.generate(req)
    assert "--control depth=" in res.command and res.columns == ["depth", "result"]
    assert _cli_bytes(res.command, tmp_path / "cli.mp4") == res.video.read_bytes()
    with pytest.raises(CinetuneError, match="interpolation"):
        studio.generate(Request(prompt=PROMPT, adapter="toy-large-controlnext", control_videos={"depth": str(depth)},
                                student="toy-large-4step", interpolate=True))


@pytest.mark.parametrize("change, message", [
    ({"prompt": "  "}, "prompt is empty"),
    ({"width": 60}, "multiples of 8"),
    ({"frames": 16}, "4k\\+1"),
    ({"steps": 0}, "positive"),
    ({"guidance": float("nan")}, "finite"),
    ({"adapter": "toy-large-controlnext"}, "needs conditions"),
    ({"identities": "toy-large-ingredients"}, "reference face"),
    ({"interpolate": True}, "few-step student"),
    ({"adapter": "no-such-adapter", "control_from": "REF", "kinds": ["canny"]}, "no saved adapter"),
    ({"student": "toy-large-controlnext"}, "not a distilled student"),
    ({"identities": "toy-large-ingredients", "identity_images": ["FLAT"]}, "no face found"),
    ({"adapter": "toy-large-controlnext", "control_from": "TEXT", "kinds": ["canny"]}, "cannot read video"),
])
def test_bad_input_is_one_line_and_keeps_earlier_results(studio, uploads, change, message):
    files = {"REF": str(uploads["reference"]), "FLAT": str(uploads["flat"]), "TEXT": str(uploads["text"])}
    change = {k: files.get(v, v) if isinstance(v, str) else [files.get(x, x) for x in v] if isinstance(v, list)
              else v for k, v in change.items()}
    before = {p: p.read_bytes() for p in studio.out.glob("*/video.mp4")}
    with pytest.raises(CinetuneError, match=message) as e:
        studio.generate(Request(**{"prompt": PROMPT, "steps": 2, **change}))
    assert "\n" not in str(e.value)
    assert {p: p.read_bytes() for p in before} == before


def test_faces_are_shown_back(studio, uploads):
    faces = studio.faces("toy-large-ingredients", [str(p) for p in uploads["faces"]])
    assert len(faces) == 2 and faces[0].shape[0] == faces[0].shape[1] >= 16
    assert faces[0].std() > 10  # a face, not a blank square
    with pytest.raises(CinetuneError, match="identities model"):
        studio.faces("none", [str(uploads["faces"][0])])


def test_extraction_is_cached_per_file(studio, uploads):
    a = studio.extract(str(uploads["reference"]), ["canny", "depth"])
    b = studio.extract(str(uploads["reference"]), ["depth"])
    assert a["depth"] is b["depth"] and a["canny"].shape == uploads["clip"].video.shape
    with pytest.raises(CinetuneError, match="pick the conditions"):
        studio.extract(str(uploads["reference"]), [])


def test_a_student_as_the_model_is_always_on(tmp_path):
    """`cinetune ui --model toy-large-4step`: the teacher loaded as the base, the student on every request."""
    from cinetune.ui import Studio

    s = Studio("toy-large-4step", device="cpu", out=tmp_path / "ui")
    assert s.fixed_student is not None and s.choices["student"] == ["toy-large-4step"]
    res = s.generate(Request(prompt=PROMPT, steps=30, guidance=5.0))  # the student's own steps and no guidance win
    assert res.command.startswith("cinetune generate --model toy-large-4step") and "--steps" not in res.command
    assert _cli_bytes(res.command, tmp_path / "cli.mp4") == res.video.read_bytes()


def test_a_diffusers_directory_serves_with_its_own_defaults(tiny_wan_dir, tmp_path):
    """A user's Wan checkpoint: the checkpoint's sizes as the page's defaults, no toy adapters offered, and the
    shown command reproduces the file."""
    from cinetune.ui import Studio

    s = Studio(str(tiny_wan_dir), device="cpu", out=tmp_path / "ui")
    assert (s.preset.frames, s.preset.height, s.preset.width) == (81, 480, 832)
    assert s.choices == {"control": [], "identities": [], "student": []}
    res = s.generate(Request(prompt="a red circle", steps=1, frames=5, height=32, width=32))
    assert f"--model {tiny_wan_dir}" in res.command
    assert _cli_bytes(res.command, tmp_path / "cli.mp4") == res.video.read_bytes()
