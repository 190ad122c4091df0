"""Configuration derived from dataclasses: one field = one YAML key = one flag, with one
help text (the field's `metadata["help"]`). Pure (no pyflink).

* `from_mapping(cls, raw, where)` builds a dataclass from a YAML mapping: an unknown key
  or a value of the wrong type is a ConfigError naming the key (`attribution.hold_ms:
  expected an integer, got 'two'`), never a TypeError traceback.
* `add_flags(parser, cls)` adds `--field-name` for every field a flag can carry (ints,
  strings, booleans, lists of strings as comma-separated values), help from the field.
Field metadata: `help` (required), `flag=False` (YAML only), `yaml=False` (derived, set
by the loader, neither a key nor a flag).
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, Field, fields

from schemas.errors import FlowattrError


class ConfigError(FlowattrError):
    """A configuration value that cannot be used; the message names its key."""


def settable_fields(cls) -> list[Field]:
    """The fields a YAML key may set (derived ones are the loader's)."""
    return [f for f in fields(cls) if f.init and f.metadata.get("yaml", True)]


def from_mapping(cls, raw, where: str, **extra):
    """A `cls` from the YAML mapping `raw` (at `where` in the file) plus `extra` values
    already converted; every key checked against the fields and their types."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {_show(raw)}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in settable_fields(cls)}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{where}.{key}: unknown key; the keys of {where} are: {', '.join(sorted(known))}")
    values = {key: convert(hints[key], value, f"{where}.{key}") for key, value in raw.items()}
    try:
        return cls(**values, **extra)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def convert(hint, value, where: str):
    """`value` as the type `hint` (int, str, bool, float, X | None, tuple[str, ...],
    dict[str, str]), or a ConfigError naming `where`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return convert(inner, value, where)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {_show(value)}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {_show(value)}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {_show(value)}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {_show(value)}")
    if origin is tuple:
        if isinstance(value, (list, tuple)):
            return tuple(convert(args[0], item, f"{where}[{i}]") for i, item in enumerate(value))
        raise ConfigError(f"{where}: expected a list, got {_show(value)}")
    if origin is dict:
        if isinstance(value, Mapping):
            return {convert(args[0], k, f"{where} (key {k!r})"): convert(args[1], v, f"{where}.{k}")
                    for k, v in value.items()}
        raise ConfigError(f"{where}: expected a mapping, got {_show(value)}")
    if isinstance(hint, type) and hasattr(hint, "__dataclass_fields__"):
        return from_mapping(hint, value, where)
    raise TypeError(f"{where}: no conversion for the type {hint!r}")  # a bug in a config dataclass


def _show(value) -> str:
    return f"{type(value).__name__} {value!r}"[:120]


def add_flags(parser: argparse.ArgumentParser, cls, section: str) -> list[str]:
    """`--field-name` for each field of `cls` a flag can carry; returns the field names.
    `section`: where the YAML key lives, named in the help."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(f"{section} (flags over the YAML's keys)")
    names = []
    for f in settable_fields(cls):
        if not f.metadata.get("flag", True):
            continue
        hint = hints[f.name]
        kind = _flag_type(hint)
        if kind is None:
            continue
        text = f.metadata.get("help")
        if not text:
            raise TypeError(f"{cls.__name__}.{f.name} has no help text")  # a bug: every field documents itself
        default = f.default if f.default is not MISSING else None
        if default not in (None, ()):
            text += f" (default {','.join(default) if isinstance(default, tuple) else default})"
        flag = "--" + f.name.replace("_", "-")
        if kind is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif kind is tuple:
            group.add_argument(flag, dest=f.name, type=_comma_list, metavar="A,B", help=text)
        else:
            group.add_argument(flag, dest=f.name, type=kind, help=text)
        names.append(f.name)
    return names


def _flag_type(hint):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _flag_type(inner[0]) if len(inner) == 1 else None
    if hint in (int, str, bool, float):
        return hint
    if origin is tuple and args[:1] == (str,):
        return tuple
    return None


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())
