"""Dataclass configs read from YAML and overridden by command-line flags.

Every job's settings are one dataclass; `parse_config` builds the argparse parser from its fields (help text from
`field(metadata={"help": ...})`), loads `--config FILE.yaml` first and applies flags on top, so a run is reproducible
from one YAML file plus the flags written in its log.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import numbers
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from assistant.errors import ConfigError

T = TypeVar("T")


def _base_type(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0]) if args else str
    return tp


def _to_bool(text: str) -> bool:
    low = str(text).lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def finite_float(text: str) -> float:
    """A float flag: `inf` and `nan` parse as floats but pass no range check written as a comparison (nan) or turn
    into frame counts that overflow or allocate terabytes (inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def split_list(value: str | list, flag: str) -> list[str]:
    """A comma-separated flag or a YAML list; a YAML item holding a comma could not be told apart on the command line
    and is refused."""
    if isinstance(value, (list, tuple)):
        items = [str(v).strip() for v in value]
        bad = [v for v in items if "," in v]
        if bad:
            raise ConfigError(f"{flag} item {bad[0]!r} holds a comma, which separates {flag} entries; rename that "
                              "folder or link it under a name without a comma.")
        return items
    return [v.strip() for v in str(value).split(",") if v.strip()]


def resolved_setting(value: str, pooled: bool = False) -> str:
    """A path setting spelled one way (`data/` and `./data` are one folder), for comparing a run with its resume and
    for what checkpoints record of the model they were built on (a relative folder names another one, or a hub
    repository, from anywhere else): each folder of a pooled (comma-separated) list; a path that does not exist (a
    hub name) is kept as given."""
    parts = value.split(",") if pooled else [value]
    return ",".join(str(Path(p).expanduser().resolve()) if Path(p).expanduser().exists() else p for p in parts)


def load_yaml(path: str | Path) -> dict:
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"Config file {p} is a folder; give a YAML file.")
    if not p.is_file():
        raise ConfigError(f"Config file {p} does not exist.")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"Config file {p} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {p} must hold a mapping of setting names to values.")
    return data


def from_dict(cls: type[T], data: dict) -> T:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"Unknown setting(s) {', '.join(unknown)} for {cls.__name__}; "
                          f"known: {', '.join(sorted(names))}.")
    hints = typing.get_type_hints(cls)
    for k, v in data.items():
        if v is None and type(None) not in typing.get_args(hints[k]):
            raise ConfigError(f"{k} is empty (null); give it a value, or leave it out for its default.")
    typed = {k: _typed(k, v, _base_type(hints[k])) for k, v in data.items()}
    for f in dataclasses.fields(cls):  # flags get their choices from argparse; YAML and the environment get them here
        choices = f.metadata.get("choices")
        if choices and f.name in typed and typed[f.name] is not None and typed[f.name] not in choices:
            raise ConfigError(f"{f.name}={typed[f.name]!r} is not valid; choose one of: "
                              f"{', '.join(map(str, choices))}.")
    return cls(**typed)


def _typed(name: str, value: Any, tp: Any) -> Any:
    """A YAML value as its field's type: YAML 1.1 reads `1e-3` as a string, and a string that reached a range check
    stopped with a TypeError ('>' between str and int); a value of another type is refused with a sentence."""
    if value is None:
        return None
    if typing.get_origin(tp) in (list, tuple):  # `aus: 12`, `aus: "1,2"` and `folds: [1]` as the list they mean
        inner = typing.get_args(tp)[0] if typing.get_args(tp) else str
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        items = value if isinstance(value, (list, tuple)) else [value]
        return [_typed(name, item, inner) for item in items]
    if tp is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # `scheme: 5` in YAML
    if value is None or tp not in (int, float, bool):
        return value
    try:
        if tp is bool:
            return value if isinstance(value, bool) else _to_bool(value)
        if isinstance(value, bool):
            raise ValueError
        number = tp(value) if isinstance(value, str) else value
        if isinstance(number, numbers.Integral):  # numpy's integers and floats too
            number = int(number)
        elif isinstance(number, numbers.Real):
            number = float(number)
        if tp is int and isinstance(number, float) and number.is_integer():
            number = int(number)
        if not isinstance(number, (int, float)) or (tp is int and not isinstance(number, int)):
            raise ValueError
    except (ValueError, TypeError, argparse.ArgumentTypeError):
        kind = {bool: "true or false", int: "a whole number", float: "a number"}[tp]
        raise ConfigError(f"{name}={value!r} must be {kind}.") from None
    if not math.isfinite(number):
        raise ConfigError(f"{name}={value} must be a finite number.")
    return number


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = _base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if f.metadata.get("choices"):
            kwargs["choices"] = f.metadata["choices"]
        if tp is bool:
            kwargs.update(type=_to_bool, nargs="?", const=True, metavar="BOOL")
        elif typing.get_origin(tp) in (list, tuple):
            inner = typing.get_args(tp)[0] if typing.get_args(tp) else str
            kwargs.update(type=inner, nargs="+")
        elif tp is float:
            kwargs["type"] = finite_float
        elif tp in (int, str):
            kwargs["type"] = tp
        default = f.default if f.default is not dataclasses.MISSING else None
        if default is not None and "default" not in help_text:
            kwargs["help"] = f"{help_text} (default: {default})".strip()
        parser.add_argument(flag, **kwargs)


def values_from_env(cls: type, prefix: str, environ: Mapping[str, str] | None = None) -> dict:
    """`PREFIX<FIELD>` environment variables as typed settings of `cls` (only those that are set)."""
    environ = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    out: dict = {}
    for f in dataclasses.fields(cls):
        raw = environ.get(prefix + f.name.upper())
        if raw is None or raw == "":
            continue
        tp = _base_type(hints[f.name])
        try:
            out[f.name] = _to_bool(raw) if tp is bool else finite_float(raw) if tp is float else tp(raw)
        except (ValueError, argparse.ArgumentTypeError):
            raise ConfigError(f"{prefix}{f.name.upper()}={raw!r} is not a valid {tp.__name__}.") from None
    return out


def parse_config(cls: type[T], argv: list[str] | None, prog: str, description: str,
                 parser: argparse.ArgumentParser | None = None, env_prefix: str | None = None,
                 environ: Mapping[str, str] | None = None,
                 records: tuple[str, ...] = ()) -> tuple[T, argparse.Namespace]:
    """Parse `argv` into `cls`: defaults < environment (`env_prefix`, when given) < YAML from `--config` < flags.
    Returns the config and the namespace (extra arguments may be added to `parser` beforehand).

    `records`: what a job writes beside its settings in its own record (the calibration it read, the resolved
    spotter settings), so that the record given as `--config` runs the job again. They are not settings: they come
    back as `ns.recorded` for the job to follow or compare, and are empty without `--config`."""
    parser = parser or argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", help="YAML file with settings; flags given here override it")
    add_dataclass_arguments(parser, cls)
    ns = parser.parse_args(argv)
    data = values_from_env(cls, env_prefix, environ) if env_prefix else {}
    ns.recorded = {}
    if getattr(ns, "config", None):
        loaded = load_yaml(ns.config)
        ns.recorded = {k: loaded.pop(k) for k in records if k in loaded}
        data.update(loaded)
    names = {f.name for f in dataclasses.fields(cls)}
    data.update({k: v for k, v in vars(ns).items() if k in names})
    return from_dict(cls, data), ns


def doc_summary(doc: str | None) -> str:
    """The first paragraph of a module docstring on one line: what a command's --help says it does (its first line
    alone stopped mid-sentence)."""
    return " ".join((doc or "").strip().split("\n\n")[0].split())
