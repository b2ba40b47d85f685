"""The method registry: a method's name -> its config section, saved model, training task, training presets, CLI
flags, benches and model-card text. The CLI, the trainer, model cards, the adapted pipeline and `generate` find
methods only here. Adding a method: a folder under methods/ whose __init__ defines `METHOD`, plus one line below."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Callable

from ..errors import CinetuneError

METHOD_MODULES = {
    "control": "cinetune.methods.control",
    "scale-adapter": "cinetune.methods.scale_adapter",
    "distill": "cinetune.methods.distill",
    "ingredients": "cinetune.methods.ingredients",
}


def _resolve(ref: str):
    """'package.module:Name' -> the object (imported on first use, so the registry stays cheap to import)."""
    module, _, name = ref.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, name) if name else obj


@dataclass(frozen=True)
class Flag:
    """A `cinetune train <method>` option that sets a config field: `--conditions a,b` -> scale.conditions."""

    option: str  # e.g. "--conditions"
    target: str  # dotted config field, e.g. "control.conditions" or "backbone"
    help: str = ""


@dataclass(frozen=True)
class Method:
    name: str  # registry key = training task name = `cinetune train <name>`
    summary: str  # one line for help texts
    section: str  # the TrainConfig field holding `config` (e.g. "control")
    config: type  # dataclass with validate()
    presets: dict  # training presets (merged into training.PRESETS)
    default_preset: str
    manifest: str  # the file naming a saved model of this method
    model: str  # "module:Class" with .load(path) -> core.AdapterModel
    task: str  # "module:Class", a training.Task
    benches: dict = field(default_factory=dict)  # bench name -> "module" whose run(out, quick) writes results
    flags: tuple[Flag, ...] = ()
    # (flag values given, CLI overrides given) -> extra overrides (e.g. a method-specific default output_dir)
    adjust: Callable[[dict, dict], dict] | None = None
    card: str = ""  # "module:function" (cfg dict) -> (recipe command, samples sentence) for model cards
    contract: str = ""  # "module:function" (make_backbone) -> tiny examples for the shared contract test
    commands: str = ""  # "module:function" (argparse subparsers) adding the method's own commands, if any
    # further training tasks of the method, each its own `cinetune train <name>`: name -> (task "module:Class",
    # default preset, summary), e.g. distill's frame interpolator
    extra_tasks: dict = field(default_factory=dict)

    def model_class(self):
        return _resolve(self.model)

    def task_class(self):
        return _resolve(self.task)

    def examples(self, make_backbone) -> list[dict]:
        return _resolve(self.contract)(make_backbone)

    def card_text(self, cfg: dict) -> tuple[str, str]:
        return _resolve(self.card)(cfg)


@cache
def methods() -> dict[str, Method]:
    """Every registered method by name."""
    out = {}
    for name, module in METHOD_MODULES.items():
        spec = importlib.import_module(module).METHOD
        if spec.name != name:
            raise RuntimeError(f"{module}.METHOD is named {spec.name!r}, registered as {name!r}")
        out[name] = spec
    return out


def extra_tasks() -> dict[str, tuple[str, str, str]]:
    """Every method's further training tasks: name -> (task "module:Class", default preset, summary)."""
    return {k: v for m in methods().values() for k, v in m.extra_tasks.items()}


def config_sections() -> dict[str, type]:
    return {m.section: m.config for m in methods().values()}


def presets() -> dict[str, dict]:
    return {k: v for m in methods().values() for k, v in m.presets.items()}


def benches() -> dict[str, str]:
    return {k: v for m in methods().values() for k, v in m.benches.items()}


def load_adapter(path: str | Path):
    """A saved model of any registered method: a directory with a method's manifest, the directory above one (an
    exported asset, a run's final/), or a shipped name; the manifest says which method loads it."""
    from ..core import find_manifest

    by_manifest = {m.manifest: m for m in methods().values()}
    found = find_manifest(path, by_manifest)
    if found is None:
        raise CinetuneError(f"{path}: no saved adapter there (looked for {', '.join(by_manifest)} in it, one level "
                            "below it and in the shipped assets)")
    return by_manifest[found[1]].model_class().load(found[0])
