"""One Studio on the shipped toy-large for the UI tests (its load is the slow part), and the files a user uploads."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def studio(tmp_path_factory):
    from cinetune.ui import Studio

    return Studio("toy-large", device="cpu", out=tmp_path_factory.mktemp("ui-out"))


@pytest.fixture(scope="session")
def uploads(tmp_path_factory) -> dict:
    """A held-out toy clip with a person (the control reference), two reference portraits, a flat image (no face)
    and a text file posing as a video."""
    import imageio.v3 as iio

    from cinetune.io import write_video
    from cinetune.methods.ingredients.bench import reference_photo
    from cinetune.toyworld import clip_seed, render_clip

    d = tmp_path_factory.mktemp("uploads")
    clip, prompt = next(c for c in (render_clip(clip_seed(11, i)) for i in range(64)) if c[0].keypoints.shape[1])
    write_video(d / "reference.mp4", clip.video, 8)
    for i in (0, 1):
        iio.imwrite(d / f"face{i}.png", reference_photo(i))
    iio.imwrite(d / "flat.png", np.full((64, 64, 3), 200, np.uint8))
    (d / "notes.mp4").write_text("not a video\n")
    return {"reference": d / "reference.mp4", "prompt": prompt, "faces": [d / "face0.png", d / "face1.png"],
            "flat": d / "flat.png", "text": d / "notes.mp4", "clip": clip}
