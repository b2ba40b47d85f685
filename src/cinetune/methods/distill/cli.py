"""Distillation's own commands: `cinetune distill export-lora` (a student as a LoRA on its teacher) and
`cinetune distill add-interpolator` (a student that samples with frame interpolation)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...errors import CinetuneError


def add_commands(sub) -> None:
    d = sub.add_parser("distill", help="distilled students: export-lora, add-interpolator")
    what = d.add_subparsers(dest="what", required=True, parser_class=type(d), metavar="COMMAND")
    e = what.add_parser("export-lora", help="the student's difference from its teacher as a rank-r LoRA "
                                            "(diffusers' Wan LoRA format)")
    e.add_argument("--student", required=True, help="a saved student (directory or shipped name)")
    e.add_argument("--rank", type=int, default=64)
    e.add_argument("--out", required=True, help="output directory (pytorch_lora_weights.safetensors)")
    e.set_defaults(fn=cmd_export_lora)
    a = what.add_parser("add-interpolator", help="a copy of a student that samples with this frame interpolator")
    a.add_argument("--student", required=True)
    a.add_argument("--interpolator", required=True, help="a trained interpolator (a run, its final/ or interpolator/)")
    a.add_argument("--half-steps", type=int, default=2, help="steps run at half the frame rate (paper: 2 of 4)")
    a.add_argument("--out", required=True)
    a.set_defaults(fn=cmd_add_interpolator)


def _student(path: str):
    from .model import StudentModel

    return StudentModel.load(path)


def cmd_export_lora(a: argparse.Namespace) -> None:
    from ...backbones import load_backbone
    from ...io import check_writable, write_json
    from ...core.lora_file import save_lora
    from .lora_export import lora_from_deltas

    check_writable(Path(a.out) / "pytorch_lora_weights.safetensors")
    student = _student(a.student)
    base = load_backbone(student.base, weights=False)  # the architecture only: names and layer types
    lora, report = lora_from_deltas(student.deltas, base.transformer, a.rank)
    out = save_lora(a.out, lora)
    write_json(out / "lora_report.json", {"rank": a.rank, "base": student.base, **report})
    print(f"{out}: rank {a.rank}, {report['layers']} layers, keeps {100 * report['kept']:.1f}% of the linear layers' "
          f"delta ({100 * report['linear']:.1f}% of the whole delta is in linear weights)")


def cmd_add_interpolator(a: argparse.Namespace) -> None:
    from .interpolator import load_interpolator

    if a.half_steps < 1:
        raise CinetuneError(f"--half-steps must be >= 1, got {a.half_steps}")
    student = _student(a.student)
    if a.half_steps >= len(student.timesteps):
        raise CinetuneError(f"--half-steps must leave a full-rate step: this student has {len(student.timesteps)}")
    student.interpolator = load_interpolator(a.interpolator)
    student.half_steps = a.half_steps
    print(student.save(a.out))
