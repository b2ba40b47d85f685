"""Dataclass configs: named presets, YAML files and dotted overrides (`optim.lr=1e-4`)."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import CinetuneError

T = TypeVar("T")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise CinetuneError(f"config field {where!r} must be a mapping, got {value!r}")
        return from_dict(tp, value, prefix=where + ".")
    if origin is typing.Union or str(origin) == "types.UnionType":
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where)
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise CinetuneError(f"config field {where!r} must be a list, got {value!r}")
        (inner, *_) = typing.get_args(tp) or (Any,)
        items = [_coerce(v, inner, where) for v in value]
        return tuple(items) if origin is tuple else items
    try:
        if tp is bool:
            if isinstance(value, str):
                low = value.lower()
                if low not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return low in ("true", "1", "yes")
            return bool(value)
        if tp in (int, float, str):
            if tp is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return tp(value)
    except (TypeError, ValueError):
        raise CinetuneError(f"config field {where!r} expects {tp.__name__}, got {value!r}") from None
    return value


def from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
    """Build dataclass `cls` from a (partial) nested dict; unknown keys are an error."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise CinetuneError(f"unknown config field(s): {', '.join(prefix + u for u in sorted(unknown))}")
    base = cls()
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            tp = hints[f.name]
            cur = getattr(base, f.name)
            if dataclasses.is_dataclass(cur) and isinstance(data[f.name], dict):
                merged = {**dataclasses.asdict(cur), **data[f.name]}
                kwargs[f.name] = from_dict(type(cur), merged, prefix=f"{prefix}{f.name}.")
            else:
                kwargs[f.name] = _coerce(data[f.name], tp, prefix + f.name)
    return dataclasses.replace(base, **kwargs)


def merge(cfg: T, data: dict) -> T:
    """Return `cfg` with the nested dict `data` applied on top."""
    return from_dict(type(cfg), _deep_update(dataclasses.asdict(cfg), data))


def _deep_update(base: dict, upd: dict) -> dict:
    out = dict(base)
    for k, v in upd.items():
        out[k] = _deep_update(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_overrides(items: list[str]) -> dict:
    """['a.b=1', 'c=x'] -> {'a': {'b': 1}, 'c': 'x'} (values parsed as YAML scalars)."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise CinetuneError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def load_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise CinetuneError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise CinetuneError(f"config file {p} is not valid YAML: {str(e).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CinetuneError(f"config file {p} must hold a mapping at the top level")
    return data


def to_yaml(cfg: Any) -> str:
    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)
