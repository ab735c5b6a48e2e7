"""The face backend contract: a detector plus a 68-point landmark fitter (the factory that builds one by name
is ``mmfer.faces.backends``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from mmfer.compat import moved

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
