"""Atomic writes: the result replaces the old file in one rename, keeps it on failure, and has ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from cinetune.io import atomic_dir, atomic_path, write_text


def test_atomic_writes_replace_keep_on_failure_and_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "one")
        with pytest.raises(RuntimeError):
            with atomic_path(tmp_path / "a.txt") as tmp:
                tmp.write_text("half")
                raise RuntimeError("interrupted")
        assert (tmp_path / "a.txt").read_text() == "one" and len(list(tmp_path.iterdir())) == 1
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644  # not mkstemp's private 0600
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "x").write_text("x")
        assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755 and (tmp_path / "d" / "x").is_file()
    finally:
        os.umask(old)


def test_a_folder_never_replaces_a_file(tmp_path):
    """A saved model's --out naming an existing file: refused, the file and its folder untouched."""
    from cinetune.errors import CinetuneError

    (tmp_path / "photo.png").write_bytes(b"user data")
    with pytest.raises(CinetuneError, match="a file of that name exists"):
        with atomic_dir(tmp_path / "photo.png") as tmp:
            (tmp / "x").write_text("x")
    assert (tmp_path / "photo.png").read_bytes() == b"user data" and len(list(tmp_path.iterdir())) == 1


def test_the_same_generation_writes_a_byte_identical_mp4(tmp_path):
    from cinetune.cli import main

    args = ["generate", "--prompt", "a red circle moves left", "--model", "toy-large", "--seed", "7", "--steps", "2"]
    files = [tmp_path / f"{i}.mp4" for i in range(3)]
    for f in files:  # one process: the model's runs in between change the memory the encoder gets
        main(args + ["--out", str(f)])
    assert len({f.read_bytes() for f in files}) == 1
