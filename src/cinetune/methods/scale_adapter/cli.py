"""Scale-Adapter's own command: `cinetune analyze block-similarity` (which small block matches which large block)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...errors import CinetuneError

MAX_CLIPS = 256


def add_commands(sub) -> None:
    an = sub.add_parser("analyze", help="analyses: block-similarity (which small block matches which large block)")
    an.add_argument("what", help="block-similarity")
    an.add_argument("--large", default="toy-large")
    an.add_argument("--small", default="toy-small")
    an.add_argument("--clips", type=int, default=6)
    an.add_argument("--out", default="benchmarks/results")
    an.set_defaults(fn=cmd_analyze)


def cmd_analyze(a: argparse.Namespace) -> None:
    from ...backbones import load_backbone
    from .similarity import analyse, report

    if a.what != "block-similarity":
        raise CinetuneError(f"unknown analysis {a.what!r}; available: block-similarity")
    if not 1 <= a.clips <= MAX_CLIPS:  # every clip's block features are held at once
        raise CinetuneError(f"--clips must be in 1..{MAX_CLIPS}, got {a.clips}")
    large, small = load_backbone(a.large), load_backbone(a.small)
    print(report(analyse(large, small, clips=a.clips), Path(a.out), a.large, a.small))
