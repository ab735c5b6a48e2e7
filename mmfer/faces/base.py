"""The face backend contract: a detector plus a 68-point landmark fitter, chosen by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from mmfer.errors import MmferError

BACKENDS = ("dlib", "mtcnn", "dlib_mtcnn", "insightface", "none")


@dataclass
class Detection:
    """One face found in an image: box x0, y0, x1, y1 (float32 pixels) and the detector's confidence."""

    box: np.ndarray
    score: float

    def __post_init__(self) -> None:
        self.box = np.asarray(self.box, dtype=np.float32).reshape(4)
        self.score = float(self.score)

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


@runtime_checkable
class FaceBackend(Protocol):
    """What the tracker needs: faces in an RGB image, and 68 iBUG points for a face box (image pixels).

    A backend may also define ``prepare(rgb) -> image``: the form its ``detect`` and ``landmarks`` work on
    fastest (dlib: grey). The tracker calls it once per frame and passes the result to both. And
    ``detect_quick(image)``: a cheaper search that may miss more, which the tracker runs on every frame while
    ``detect`` runs only on its rationed retries (dlib_mtcnn: HOG alone, then HOG and MTCNN).
    """

    name: str

    def detect(self, image: np.ndarray) -> list[Detection]: ...

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray: ...


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


def as_rgb_uint8(image: np.ndarray, *, grey_ok: bool = False) -> np.ndarray:
    """Contiguous uint8 (H, W, 3), or (H, W) grey where ``grey_ok`` (dlib reads both); anything else is a
    programming error."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or not ((image.ndim == 3 and image.shape[2] == 3) or (grey_ok and image.ndim == 2)):
        raise ValueError(f"expected an RGB uint8 image (H, W, 3){' or a grey one (H, W)' if grey_ok else ''}, "
                         f"got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


def to_grey(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) luminance of an RGB frame (grey frames pass through): one conversion per frame, shared by
    detection and landmark fitting, which otherwise each convert every pixel they read."""
    import cv2

    image = as_rgb_uint8(image, grey_ok=True)
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
