"""The face backends by name: ``get_backend("dlib")`` builds one (once per process), ``check_backend`` says
whether it could be built. The contract every backend meets is ``mmfer.faces.base.FaceBackend``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmfer.errors import MmferError

if TYPE_CHECKING:
    from mmfer.faces.base import FaceBackend

BACKENDS = ("dlib", "mtcnn", "dlib_mtcnn", "insightface", "none")

_CACHE: dict[str, FaceBackend] = {}


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
    """The named backend, built once per process (loading models costs more than a short clip)."""
    key, cls = _backend_class(name)
    if key not in _CACHE:
        _CACHE[key] = cls()
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
