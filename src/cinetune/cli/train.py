"""`cinetune train <kind>`: base (DiTs, VAE), features (toy feature networks) and one subcommand per registered
method, whose flags come from the method registry."""

from __future__ import annotations

import argparse

from ..errors import CinetuneError

BASE_KINDS = {"base": (("dit", "vae"), "DiTs and the VAE"),
              "features": (("video-encoder", "identity-encoder", "annotator"), "toy video/identity encoders, annotator")}


def _common(t: argparse.ArgumentParser, default_preset: str | None) -> None:
    t.add_argument("--preset", default=default_preset, required=default_preset is None, help="training preset")
    t.add_argument("--backbone", default=None, help="backbone preset (e.g. toy-large)")
    t.add_argument("--config", help="YAML file applied on top of the preset")
    t.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    t.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)
    t.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. steps=100 optim.lr=1e-4")


def add_train(sub) -> None:
    from ..methods.registry import extra_tasks, methods

    t = sub.add_parser("train", help="train with the shared trainer: cinetune train base --preset toy-small")
    kinds = t.add_subparsers(dest="kind", required=True, parser_class=type(t), metavar="KIND")
    for name, (tasks, what) in BASE_KINDS.items():
        k = kinds.add_parser(name, help=what)
        _common(k, None)
        k.set_defaults(fn=cmd_train, tasks=tasks, flags=())
    for name, m in methods().items():
        k = kinds.add_parser(name, help=m.summary)
        _common(k, m.default_preset)
        for f in m.flags:
            k.add_argument(f.option, dest=f"flag_{f.target}", metavar=f.option.lstrip("-").upper(), default=None,
                           help=f.help)
        k.set_defaults(fn=cmd_train, tasks=(name,), flags=m.flags, method=m)
    for name, (_, preset, summary) in extra_tasks().items():
        k = kinds.add_parser(name, help=summary)
        _common(k, preset)
        k.set_defaults(fn=cmd_train, tasks=(name,), flags=())


def _nested(dotted: dict) -> dict:
    out: dict = {}
    for key, value in dotted.items():
        node = out
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def cmd_train(a: argparse.Namespace) -> None:
    from ..config import load_yaml, merge, parse_overrides
    from ..training import preset_config, train

    cfg = preset_config(a.preset)
    if cfg.task not in a.tasks:
        raise CinetuneError(f"preset {a.preset!r} trains a {cfg.task}, not a `{a.kind}` model")
    if a.config:
        cfg = merge(cfg, load_yaml(a.config))
    overrides = parse_overrides(a.overrides) if a.overrides else {}
    flags = _nested({f.target: getattr(a, f"flag_{f.target}") for f in a.flags
                     if getattr(a, f"flag_{f.target}") is not None})
    if getattr(a, "method", None) is not None and a.method.adjust is not None:
        flags.update(a.method.adjust(flags, overrides))
    backbone = flags.pop("backbone", None) or a.backbone
    if backbone:
        flags["backbone"] = backbone
        if backbone != cfg.backbone and cfg.init == cfg.backbone:
            flags["init"] = ""  # the preset's shipped weights belong to its own backbone
    if flags:
        cfg = merge(cfg, flags)
    if overrides:
        cfg = merge(cfg, overrides)
    cfg.validate()
    print(train(cfg, resume=a.resume, stop_after=a.stop_after))
