"""Typed configs: YAML or dicts -> frozen dataclasses, with unknown keys rejected by name.

A config describes a run completely, so a typo must fail loudly instead of silently
falling back to a default.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mmfer.errors import MmferError

T = TypeVar("T")
log = logging.getLogger(__name__)


def from_dict(cls: type[T], data: dict[str, Any] | None, *, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``, recursing into nested dataclass fields.

    ``where`` names the place in the file (e.g. ``configs/c3d.yaml: model``) for error messages.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MmferError(f"{_colon(where)} expected a mapping of keys to values, got {type(data).__name__}")
    for old, new in getattr(cls, "RENAMED", {}).items():  # a key's older name: read as its new one, and said
        if old in data:
            if new in data:
                raise MmferError(f"{_colon(where)} both {old!r} and {new!r}: {old!r} is {new!r}'s older name; keep {new!r}")
            log.warning("%s %r is called %r now; read as %r (rename it in the file)", _colon(where), old, new, new)
            data = {(new if k == old else k): v for k, v in data.items()}
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise MmferError(
            f"{_colon(where)} unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, where=_at(where, name))
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise MmferError(f"{_colon(where)} missing required key{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except MmferError as e:  # a range check in __post_init__: say where in the file
        raise MmferError(_at(where, str(e))) from None


def check_fields(obj: Any, *, where: str = "") -> None:
    """A config built in Python (not read from YAML) checked as ``from_dict`` checks a file: each choice among its
    allowed values (``select_by="UAR"`` trained a whole run on accuracy, then failed at its end), and a section
    given as a plain dict turned into its dataclass with its keys checked. Recurses into sections."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, tp, name = getattr(obj, f.name), hints[f.name], f"{where}{f.name}"
        if dataclasses.is_dataclass(tp) and isinstance(value, dict):
            value = from_dict(tp, value, where=name)
            object.__setattr__(obj, f.name, value)  # (frozen sections too)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_fields(value, where=f"{name}.")
            continue
        options = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
        simple = [o for o in options if o in (bool, int, float, str)]
        if simple and value is not None and not any(_fits(value, o) for o in simple):  # epochs=2.5 from Python
            raise MmferError(f"{name}: expected {' or '.join(o.__name__ for o in simple)}, got {value!r}")
        choices = [c for o in options if typing.get_origin(o) is typing.Literal for c in typing.get_args(o)]
        if choices and value not in choices and not (value is None and type(None) in options):
            raise MmferError(f"{name}: {value!r} is not one of {', '.join(map(repr, choices))}")


def _fits(value: Any, tp: type) -> bool:
    """``value`` is of scalar type ``tp`` as a YAML file's would be read: a bool is no number, an int is a float."""
    if tp is bool or isinstance(value, bool):
        return tp is bool and isinstance(value, bool)
    return isinstance(value, {float: numbers.Real, int: numbers.Integral}.get(tp, tp))  # numpy's numbers too


def check_range(obj: Any, name: str, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> None:
    """A dataclass field's value within [low, high] (or open ends); the error starts with the field's name,
    so ``from_dict`` can prefix where it sits (``configs/x.yaml: optim.lr: ...``)."""
    value = getattr(obj, name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # from Python: lr="0.1" was a bare TypeError
        raise MmferError(f"{name}: expected a number, got {value!r}")
    bad = (low is not None and (value <= low if low_open else value < low)) or (
        high is not None and (value >= high if high_open else value > high))
    if bad or (isinstance(value, float) and not math.isfinite(value)):  # nan, and inf (lr: .inf trained to NaN)
        lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
        raise MmferError(f"{name}: {value!r} is out of range; it must be {' and '.join(x for x in (lo, hi) if x)}")


def _coerce(tp: Any, value: Any, *, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where=where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where=where)
            except MmferError as e:
                errors.append(str(e))
        raise MmferError(errors[0] if len(errors) == 1 else f"{_colon(where)} {value!r} matches none of {tp}")
    if origin is typing.Literal:
        if value not in args:
            raise MmferError(f"{_colon(where)} {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise MmferError(f"{_colon(where)} expected a list, got {value!r}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, where=f"{where}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise MmferError(f"{_colon(where)} expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(a, v, where=f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        inner = args[0] if args else Any
        return [_coerce(inner, v, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if value is None:  # `kwargs:` with nothing under it, as an empty section reads as its defaults
            return {}
        if not isinstance(value, dict):
            raise MmferError(f"{_colon(where)} expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise MmferError(f"{_colon(where)} expected {tp.__name__}, got {value!r}")
        return value
    return value


# A config is a few KB; anything far larger is not one (and is not read into memory).
MAX_CONFIG_BYTES = 1 << 20


class _StrictLoader(yaml.SafeLoader):
    """YAML for configs: no anchors or aliases (``&a`` / ``*a``: nine levels of nine aliases expand a 1 KB file
    to gigabytes before any key is checked), and a key given twice in one mapping is an error instead of the
    last one silently winning."""

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"alias *{event.anchor} found: anchors and aliases (&name / *name) are not allowed in "
                "configs; write the values out", event.start_mark)
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(
                None, None, f"anchor &{event.anchor} found: anchors and aliases (&name / *name) are not allowed in "
                "configs; write the values out", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):  # noqa: ANN001
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: PyYAML's own error follows
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping (first on line {first.line + 1}); "
                    "keep one", key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 (PyYAML) reads 1e-3 as a string, as it wants a dot (1.0e-3); YAML 1.2 and every reader of these
# files take it as the number it is
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def read_yaml(path: str | Path) -> Any:
    """The plain data of a YAML config file, read strictly (``_StrictLoader``); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise MmferError(f"{path}: config file not found")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise MmferError(f"{path}: {size} bytes, too large for a config (at most {MAX_CONFIG_BYTES} bytes)")
    try:
        return yaml.load(path.read_text(encoding="utf-8-sig"), Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)  # where the parser stopped, 1-based as editors count
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        what = " ".join(filter(None, (getattr(e, "context", None), getattr(e, "problem", None)))) or str(e)
        raise MmferError(f"{where}: not valid YAML: {what}") from None
    except UnicodeDecodeError as e:
        raise MmferError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except RecursionError:  # [[[[...]]]] past what the parser takes: no config is written so
        raise MmferError(f"{path}: not a config: nested too deeply") from None


def _colon(where: str) -> str:
    """``where`` as a message's prefix: ``configs/c3d.yaml:`` stays, ``...: optim`` gets its colon."""
    return where if where.endswith(":") else f"{where}:"


def _at(where: str, name: str) -> str:
    """``configs/c3d.yaml:`` + ``optim`` -> ``configs/c3d.yaml: optim``; ``...: optim`` + ``lr`` -> ``...: optim.lr``."""
    return f"{where} {name}" if where.endswith(":") else f"{where}.{name}"


def load_yaml(cls: type[T], path: str | Path) -> T:
    """Load a YAML file into dataclass ``cls``; anchors, aliases and repeated keys are errors."""
    return from_dict(cls, read_yaml(path), where=f"{path}:")


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass config as plain types (for checkpoints, JSON and YAML)."""
    return dataclasses.asdict(obj)
