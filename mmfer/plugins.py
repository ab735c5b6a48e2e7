"""Your own code in mmfer: the modules ``mmfer --import`` loads before a command, where your models
(``mmfer.models.registry.register_model``) and face backends (``mmfer.faces.backends.register_backend``) are
registered."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Sequence

from mmfer.errors import MmferError


def import_user_modules(names: Sequence[str]) -> None:
    """``mmfer --import MODULE``: the user's modules (or ``.py`` files), imported before the command runs, so the
    models and face backends they register can be named; the current folder is searched too, as ``python -m``
    would, but after the installed packages: a file beside yours named like one of them (``dlib.py``) is never
    imported in its place."""
    if names and "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    for name in names:
        file = None
        if name.endswith(".py"):  # a file: its folder searched (worker processes get the same path), its name imported
            path = Path(name).expanduser().resolve()
            if not path.is_file():
                raise MmferError(f"--import {name}: no such file")
            taken = sys.modules.get(path.stem)
            if taken is not None and Path(getattr(taken, "__file__", "") or "").resolve() != path:
                raise MmferError(f"--import {name}: a module named {path.stem} is already loaded "
                                 f"({getattr(taken, '__file__', None) or 'built in'}); rename the file")
            if str(path.parent) not in sys.path:
                sys.path.append(str(path.parent))
            name, file = path.stem, path
        try:
            module = importlib.import_module(name)
        except ImportError as e:
            raise MmferError(f"--import {name}: cannot import it ({e})") from None
        except MmferError as e:  # a registration refused (a name taken)
            raise MmferError(f"--import {name}: {e}") from None
        except Exception as e:  # noqa: BLE001 - the user's module failed as it ran (a syntax error, its own raise)
            raise MmferError(f"--import {name}: the module failed as it was imported ({type(e).__name__}: {e}); "
                             f"`python -c 'import {name}'` shows where") from None
        found = getattr(module, "__file__", None)
        if file is not None and Path(found or "").resolve() != file:
            raise MmferError(f"--import {file}: the name {name} is an installed module ({found or 'built in'}), "
                             "imported instead of your file; rename the file")
