"""Names that moved to another module stay importable from their old one for one release.

A module whose names moved ends with ``__getattr__ = moved(__name__, {"name": "new.module", ...})``: reading
such a name there imports it from its new home (lazily, so the old module does not depend on the new one
and no import cycle comes back) and, for callers outside mmfer, warns with a ``DeprecationWarning`` that
names the new path. Keyword arguments renamed to their command-line option's name keep their old name the same
way (``renamed_argument``). The README's "Where things moved" section lists them.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable


def moved(old: str, names: dict[str, str], *, warn: bool = True) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for module ``old`` whose ``names`` (name -> new module) moved.
    ``warn=False`` for names that mmfer's own modules still read from the old path."""

    def __getattr__(name: str) -> Any:
        new = names.get(name)
        if new is None:
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        if warn:
            warnings.warn(f"{old}.{name} moved to {new}.{name}; import it from there (the old path goes in the "
                          "next release)", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(new), name)

    return __getattr__


def renamed_argument(value: Any, old_value: Any, *, function: str, new: str, old: str, option: str,
                     default: Any = None) -> Any:
    """A keyword argument renamed to its command-line option's name: ``value`` (given as ``new``), or
    ``old_value`` (given by its old name ``old``) with a ``DeprecationWarning`` naming the new one; both given
    (``value`` other than its ``default``) is an error."""
    if old_value is None:
        return value
    if value is not None and value != default:
        from mmfer.errors import MmferError

        raise MmferError(f"{function}: {new} and its old name {old} both given; give {new}")
    warnings.warn(f"{function}({old}=) is {function}({new}=) now, as {option} on the command line",
                  DeprecationWarning, stacklevel=3)
    return old_value
