"""Names that moved to another module stay importable from their old one for one release.

A module whose names moved ends with ``__getattr__ = moved(__name__, {"name": "new.module", ...})``: reading
such a name there imports it from its new home (lazily, so the old module does not depend on the new one
and no import cycle comes back) and, for callers outside mmfer, warns with a ``DeprecationWarning`` that
names the new path. The README's "Where things moved" section lists them.
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
