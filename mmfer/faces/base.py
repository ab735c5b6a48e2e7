"""The face backend contract: a detector plus a 68-point landmark fitter (the factory that builds one by name
is ``mmfer.faces.backends``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from mmfer.compat import moved
from mmfer.errors import MmferError

log = logging.getLogger(__name__)

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


class FaceBackendError(MmferError):
    """A face backend that raised, or answered in a form no face can be read from (a programming error of the
    backend, not of the video): said naming the backend, never as a decoding failure of the file."""


_SAID: set[tuple[str, str]] = set()  # (backend, what): implausible answers are warned of once per process


def _backend_name(backend: Any) -> str:
    inner = getattr(backend, "_backend", backend)  # the one-call-at-a-time wrapper of mmfer.faces.backends
    cls = type(inner)
    return f"face backend {getattr(inner, 'name', '?')!r} ({cls.__module__}.{cls.__qualname__})"


def call_backend(backend: Any, method: Callable[..., Any], *args: Any) -> Any:
    """``method(*args)`` of ``backend``; anything it raises but an ``MmferError`` (a missing model, said by the
    backend itself) becomes a ``FaceBackendError`` naming the backend and the method."""
    try:
        return method(*args)
    except MmferError:
        raise
    except Exception as e:  # noqa: BLE001 - the backend's own failure, said as its own
        raise FaceBackendError(f"{_backend_name(backend)}.{getattr(method, '__name__', 'detect')} raised "
                               f"{type(e).__name__}: {e}") from e


def _warn_once(backend: Any, what: str, text: str) -> None:
    name = _backend_name(backend)
    if (name, what) not in _SAID:
        _SAID.add((name, what))
        log.warning("%s %s; such answers are left out (said once)", name, text)


def checked_detections(backend: Any, dets: Any, image_hw: tuple[int, int]) -> list[Detection]:
    """A backend's detections that can be faces in an image of ``image_hw``: boxes finite, at least a pixel
    wide and high, at most four frames wide, and at least a fifth inside the image (a face cut by the frame's
    edge stays); a score that is not finite counts as 0. Others are left out, with a warning once."""
    if not isinstance(dets, (list, tuple)):
        raise FaceBackendError(f"{_backend_name(backend)}.detect returned {type(dets).__name__}; expected a list "
                               "of mmfer.faces.base.Detection")
    h, w = image_hw
    kept: list[Detection] = []
    for d in dets:
        if not isinstance(d, Detection):
            raise FaceBackendError(f"{_backend_name(backend)}.detect returned a {type(dets).__name__} holding "
                                   f"{type(d).__name__}; expected mmfer.faces.base.Detection(box=[x0, y0, x1, y1], "
                                   "score=...) in a list")
        x0, y0, x1, y1 = (float(v) for v in d.box)
        bw, bh = x1 - x0, y1 - y0
        inside = max(0.0, min(x1, w) - max(x0, 0.0)) * max(0.0, min(y1, h) - max(y0, 0.0))
        if not (np.isfinite(d.box).all() and bw >= 1 and bh >= 1 and max(bw, bh) <= 4 * max(h, w)
                and inside >= 0.2 * bw * bh):
            _warn_once(backend, "box", f"gave a box that cannot be a face in a {w}x{h} image "
                                       f"({', '.join(f'{v:g}' for v in d.box)}: not finite, empty, or mostly "
                                       "outside the image)")
            continue
        kept.append(d if np.isfinite(d.score) else Detection(d.box, 0.0))
    return kept


def checked_landmarks(backend: Any, pts: Any, box: np.ndarray) -> np.ndarray | None:
    """A backend's 68 points (float32) for the face in ``box``, or None where they are no face: not finite (a fit
    that failed), all at one place, or mostly far from the box (warned of once). Another shape is an error."""
    try:
        pts = np.asarray(pts, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise FaceBackendError(f"{_backend_name(backend)}.landmarks returned {type(pts).__name__}, not an array of "
                               f"68 points ({e})") from None
    if pts.shape != (68, 2):
        raise FaceBackendError(f"{_backend_name(backend)}.landmarks returned an array of shape {pts.shape}; expected "
                               "(68, 2): the 68 iBUG points as x, y image pixels")
    if not np.isfinite(pts).all():
        return None
    x0, y0, x1, y1 = (float(v) for v in np.asarray(box, np.float64).reshape(-1)[:4])
    mx, my = 0.5 * max(x1 - x0, 1.0), 0.5 * max(y1 - y0, 1.0)
    near = ((pts[:, 0] >= x0 - mx) & (pts[:, 0] <= x1 + mx) & (pts[:, 1] >= y0 - my) & (pts[:, 1] <= y1 + my))
    spread = pts.max(axis=0) - pts.min(axis=0)
    if near.mean() < 0.5 or (spread < 2.0).any():
        _warn_once(backend, "landmarks", "gave 68 points that are no face (mostly far from the face's box, or "
                                         "all at one place)")
        return None
    return pts


def landmarks_of(backend: Any, image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """``backend.landmarks(image, box)``, checked (``call_backend``, ``checked_landmarks``): 68 points or None."""
    return checked_landmarks(backend, call_backend(backend, backend.landmarks, image, box), box)


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


# the backend factory moved to mmfer.faces.backends; mmfer.predict still reads get_backend from here, so these
# stay readable without a warning (switch them to warn once it imports from mmfer.faces.backends)
__getattr__ = moved(__name__, {n: "mmfer.faces.backends" for n in ("BACKENDS", "get_backend", "check_backend")},
                    warn=False)
