"""The face backends by name: ``get_backend("dlib")`` builds one (once per process), ``check_backend`` says
whether it could be built, ``register_backend`` adds one of your own. The contract every backend meets is
``mmfer.faces.base.FaceBackend``."""

from __future__ import annotations

import functools
import importlib
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

from mmfer.errors import MmferError
from mmfer.faces.base import FaceBackendError

if TYPE_CHECKING:
    from mmfer.faces.base import FaceBackend

# name -> the backend's class, or "module:Class" for mmfer's own (imported when first asked for, so naming the
# backends does not import dlib, torch or onnxruntime)
BACKENDS: dict[str, Any] = {
    "dlib": "mmfer.faces.dlib:DlibBackend",
    "mtcnn": "mmfer.faces.mtcnn:MtcnnBackend",
    "dlib_mtcnn": "mmfer.faces.mtcnn:DlibMtcnnBackend",
    "insightface": "mmfer.faces.insightface:InsightFaceBackend",
    "none": "mmfer.faces.none:NoDetectBackend",
}
BUILTIN_BACKENDS = tuple(BACKENDS)


def register_backend(name: str, cls: Any, *, replace: bool = False) -> None:
    """Add a face backend under ``name`` (lower case): a class whose instances meet ``FaceBackend`` (``detect``,
    ``landmarks``, ``name``), built without arguments; a ``check`` class method, if any, raises the error building
    would (a missing package or model file) without loading models. Then ``--face-backend NAME`` (after
    ``mmfer --import MODULE``), ``PreprocessSettings(face_backend=NAME)`` and a bundle's ``decode.face_backend``
    use it. Spawned preprocess workers import it by its module, so define it at the top level of an importable
    module. A name already taken is an error unless ``replace``: caches made with it would be redone with another
    detector."""
    if not isinstance(name, str) or not name.strip() or name.strip().lower() != name or " " in name:
        raise MmferError(f"register_backend: the name must be a non-empty lower-case word, got {name!r}")
    instance = not isinstance(cls, type) and hasattr(cls, "detect")  # a backend object, not its class
    if not callable(cls) or instance:
        raise MmferError(f"register_backend({name!r}): the backend must be a class, built once per process without "
                         f"arguments; got {'an instance of ' if instance else ''}{type(cls).__name__}"
                         f"{': pass the class itself' if instance else ''}")
    with _BUILDING:  # not while another thread builds the backend this name had
        if name in BACKENDS and not replace and not _same_class(BACKENDS[name], cls):
            raise MmferError(f"register_backend: {name!r} is already a face backend ({_describe(BACKENDS[name])}); "
                             "choose another name, or pass replace=True")
        BACKENDS[name] = cls
        _CACHE.pop(name, None)


def registered_backend(name: str) -> tuple[str, Any] | None:
    """``(name, class)`` of a backend registered by your own code (a built-in name replaced too), for a spawned
    worker to register again; None for mmfer's own (and unknown names)."""
    key = str(name).strip().lower()
    entry = BACKENDS.get(key)
    return None if entry is None or isinstance(entry, str) else (key, entry)


def backend_name(name: str) -> str:
    """``name`` as the registry spells it (stripped, lower case); an unknown name is an error listing the known
    ones, said before any work (commands call this first)."""
    key = str(name).strip().lower()
    if key not in BACKENDS:
        raise MmferError(f"unknown face backend {name!r}; choose one of: {', '.join(BACKENDS)} (a backend of your "
                         "own: register it with mmfer.faces.backends.register_backend, and on the command line "
                         "import its module first: `mmfer --import MODULE ...`)")
    return key


def check_spawnable(name: str) -> None:
    """A backend of your own that spawned worker processes cannot import (a class made inside a function, or in a
    notebook's or ``python -c``'s ``__main__``) is an error saying what to do, before any clip."""
    entry = registered_backend(name)
    if entry is None:
        return
    cls = entry[1]
    module, qualname = getattr(cls, "__module__", ""), getattr(cls, "__qualname__", "")
    main = sys.modules.get("__main__")
    if "<locals>" in qualname or (module == "__main__" and not getattr(main, "__file__", None)):
        raise MmferError(f"face backend {entry[0]!r} ({_describe(cls)}) cannot be loaded by worker processes: they "
                         "import it by its module, and it was made inside a function or in an interactive session; "
                         "move the class into a module of its own (import that, or `mmfer --import MODULE`), or "
                         "use one worker (workers=1, --workers 1)")


def _same_class(entry: Any, cls: Any) -> bool:
    """The class registered again: the same object, or the same module and name (its module reloaded, a notebook
    cell run again)."""
    return entry is cls or (not isinstance(entry, str) and _describe(entry) == _describe(cls))


def _describe(entry: Any) -> str:
    if isinstance(entry, str):
        return entry.replace(":", ".")
    return f"{getattr(entry, '__module__', '?')}.{getattr(entry, '__qualname__', type(entry).__name__)}"


_CACHE: dict[str, FaceBackend] = {}
_BUILDING = threading.Lock()
# One lock for every backend: they share dlib's shape predictor (load_predictor), which two threads must not
# call at once, whichever backend each goes through.
_CALLS = threading.RLock()


def _new_locks() -> None:  # a forked child: no thread of the parent holds these there
    global _BUILDING, _CALLS
    _BUILDING, _CALLS = threading.Lock(), threading.RLock()


if hasattr(os, "register_at_fork"):  # POSIX only; Windows has no fork to renew state after
    os.register_at_fork(after_in_child=_new_locks)


class _OneCallAtATime:
    """A backend shared by a process's threads, called by one thread at a time: dlib's detector and shape
    predictor are not safe to call from two at once (two threads predicting got other faces from it, silently:
    a clip's face_ratio 1.0 read 0.25, or the process crashed). Detection is a small part of a clip's cost."""

    def __init__(self, backend: Any) -> None:
        object.__setattr__(self, "_backend", backend)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_backend":  # copy and pickle find no _backend yet
            raise AttributeError(name)
        value = getattr(self._backend, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            with _CALLS:
                return value(*args, **kwargs)

        return call

    def __setattr__(self, name: str, value: Any) -> None:  # a setting changed reaches the backend
        setattr(self._backend, name, value)

    def __repr__(self) -> str:
        return f"{self._backend!r} (one call at a time)"


def _backend_class(name: str) -> tuple[str, type]:
    key = backend_name(name)
    entry = BACKENDS[key]
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module), attr)
    return key, entry


def get_backend(name: str) -> FaceBackend:
    """The named backend, built once per process (loading models costs more than a short clip) and safe to share
    between threads."""
    key, cls = _backend_class(name)
    if key not in _CACHE:  # built once; a thread building a slow one holds up only those that need it
        with _BUILDING:
            if key not in _CACHE:
                try:
                    built = cls()
                except MmferError:  # a missing package or model file, said by the backend
                    raise
                except Exception as e:  # noqa: BLE001 - the backend's own failure, said as its own
                    raise FaceBackendError(f"face backend {key!r} ({_describe(cls)}) could not be built: "
                                           f"{type(e).__name__}: {e}") from e
                _CACHE[key] = _OneCallAtATime(built)
    return _CACHE[key]


def check_backend(name: str) -> None:
    """Raise the error ``get_backend`` would (missing package or model file) without loading the models, where
    the backend can tell (a ``check`` class method); otherwise load it."""
    key, cls = _backend_class(name)
    check = getattr(cls, "check", None)
    if key in _CACHE or check is None:
        get_backend(key)
    else:
        check()
