"""The face backends by name: ``get_backend("dlib")`` builds one (once per process), ``check_backend`` says
whether it could be built. The contract every backend meets is ``mmfer.faces.base.FaceBackend``."""

from __future__ import annotations

import functools
import os
import threading
from typing import TYPE_CHECKING, Any

from mmfer.errors import MmferError

if TYPE_CHECKING:
    from mmfer.faces.base import FaceBackend

BACKENDS = ("dlib", "mtcnn", "dlib_mtcnn", "insightface", "none")

_CACHE: dict[str, FaceBackend] = {}
_BUILDING = threading.Lock()
# One lock for every backend: they share dlib's shape predictor (load_predictor), which two threads must not
# call at once, whichever backend each goes through.
_CALLS = threading.RLock()


def _new_locks() -> None:  # a forked child: no thread of the parent holds these there
    global _BUILDING, _CALLS
    _BUILDING, _CALLS = threading.Lock(), threading.RLock()


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
    key = str(name).strip().lower()
    if key not in BACKENDS:
        raise MmferError(f"unknown face backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    if key == "dlib":
        from mmfer.faces.dlib import DlibBackend as cls
    elif key == "mtcnn":
        from mmfer.faces.mtcnn import MtcnnBackend as cls
    elif key == "dlib_mtcnn":
        from mmfer.faces.mtcnn import DlibMtcnnBackend as cls
    elif key == "insightface":
        from mmfer.faces.insightface import InsightFaceBackend as cls
    else:
        from mmfer.faces.none import NoDetectBackend as cls
    return key, cls


def get_backend(name: str) -> FaceBackend:
    """The named backend, built once per process (loading models costs more than a short clip) and safe to share
    between threads."""
    key, cls = _backend_class(name)
    if key not in _CACHE:  # built once; a thread building a slow one holds up only those that need it
        with _BUILDING:
            if key not in _CACHE:
                _CACHE[key] = _OneCallAtATime(cls())
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
