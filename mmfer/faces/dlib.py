"""Default offline backend: dlib's HOG frontal face detector and its 68-point shape predictor.

The predictor file comes with the ``face_recognition_models`` package, so nothing is downloaded.
"""

from __future__ import annotations

import functools

import numpy as np

from mmfer.errors import MmferError
from mmfer.faces.base import Detection, as_rgb_uint8, to_grey


def _import_dlib():
    try:
        import dlib  # absolute import: the dlib package, not this module
    except ImportError as e:
        raise MmferError(
            f"the dlib face backend needs the dlib package ({e}); install it with `pip install dlib-bin` "
            "or choose --face-backend insightface/none"
        ) from None
    return dlib


def predictor_path() -> str:
    """The 68-point shape predictor shipped by face_recognition_models."""
    try:
        import face_recognition_models
    except ImportError:
        raise MmferError(
            "the 68-point landmark model comes from the face_recognition_models package, which is missing; "
            "install it with `pip install face-recognition-models`"
        ) from None
    return face_recognition_models.pose_predictor_model_location()


@functools.lru_cache(maxsize=1)
def load_predictor():
    """dlib.shape_predictor for iBUG-68 points, loaded once (95 MB) and shared by the dlib and none backends."""
    dlib = _import_dlib()
    path = predictor_path()
    try:
        return dlib.shape_predictor(path)
    except RuntimeError as e:
        raise MmferError(f"{path}: cannot load the dlib 68-point predictor ({e}); reinstall face-recognition-models") from None


def check_predictor() -> None:
    """dlib imports and the predictor file is there (what load_predictor needs), without loading it."""
    from pathlib import Path

    _import_dlib()
    path = predictor_path()
    if not Path(path).is_file():
        raise MmferError(f"{path}: the dlib 68-point predictor file is missing; reinstall face-recognition-models")


# A fit whose eyes are tilted more than this (degrees) is fitted again with the face turned upright: dlib's
# predictor was trained on upright faces and drifts on tilted ones. On 75 FER2013 faces at 192 px turned 30
# degrees, fits in a plain box lay 13.5 % of the inter-ocular distance from the upright fit (mean; 20 % of
# faces past 15 %), fitted upright 1.8 % (median; 6.3 % in the plain box); one turn is enough (a second
# changed nothing).
UPRIGHT_ABOVE_DEG = 12.0


def _fit(predictor, image: np.ndarray, box: np.ndarray) -> np.ndarray:
    import dlib

    x0, y0, x1, y1 = (int(round(float(v))) for v in np.asarray(box, dtype=np.float64)[:4])
    shape = predictor(as_rgb_uint8(image, grey_ok=True), dlib.rectangle(x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def eye_roll_deg(points68: np.ndarray) -> float:
    """In-plane tilt of the line between the eye centres, degrees (positive: the face's left eye lower)."""
    p = np.asarray(points68, dtype=np.float64)
    d = p[42:48].mean(axis=0) - p[36:42].mean(axis=0)
    return float(np.degrees(np.arctan2(d[1], d[0])))


def fit_landmarks(predictor, image: np.ndarray, box: np.ndarray, *, upright: bool = True) -> np.ndarray:
    """Run a dlib shape predictor in ``box`` of an RGB or grey image: (68, 2) float32 image pixels.

    With ``upright``, a face found tilted past UPRIGHT_ABOVE_DEG is fitted once more in a patch around the box
    turned upright, and the points are turned back: a rolled head (or a face found by the turned-frame retry of
    MTCNN) gets the predictor's upright accuracy. Upright faces cost one fit, as before."""
    pts = _fit(predictor, image, box)
    roll = eye_roll_deg(pts)
    if not upright or not np.isfinite(roll) or abs(roll) <= UPRIGHT_ABOVE_DEG:
        return pts
    return _upright_fit(predictor, image, box, roll)


def _upright_fit(predictor, image: np.ndarray, box: np.ndarray, roll: float) -> np.ndarray:
    """Fit in ``box`` with the image turned by ``roll`` degrees about the box centre; points in image pixels."""
    import cv2

    b = np.asarray(box, dtype=np.float64)[:4]
    h, w = image.shape[:2]
    half = 0.75 * max(b[2] - b[0], b[3] - b[1])  # the patch: the box grown to hold it at any angle
    centre = (b[:2] + b[2:]) / 2
    x0, y0 = max(0, int(centre[0] - half)), max(0, int(centre[1] - half))
    x1, y1 = min(w, int(np.ceil(centre[0] + half))), min(h, int(np.ceil(centre[1] + half)))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return _fit(predictor, image, box)
    c = (float(centre[0] - x0), float(centre[1] - y0))
    turn = cv2.getRotationMatrix2D(c, roll, 1.0)  # maps patch pixels to the upright patch
    patch = cv2.warpAffine(np.ascontiguousarray(image[y0:y1, x0:x1]), turn, (x1 - x0, y1 - y0),
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    up = _fit(predictor, patch, b - np.array([x0, y0, x0, y0]))
    back = cv2.invertAffineTransform(turn)
    return (up @ back[:, :2].T + back[:, 2] + np.array([x0, y0])).astype(np.float32)


# Where dlib's HOG box sits relative to the eyes + nose (align.rigid_frame): centre offset and width, height
# in units of the rigid radius; the mean over the CREMA-D fixtures (spread about 0.1).
DETECTOR_BOX_REL = np.array([-0.034, 0.545, 5.0, 5.0])


def detector_box_from(points68: np.ndarray) -> np.ndarray:
    """The box dlib's HOG detector would likely give for a face with these landmarks (x0, y0, x1, y1)."""
    from mmfer.faces.align import box_in_rigid_frame

    return box_in_rigid_frame(points68, DETECTOR_BOX_REL)


def refit_in_detector_box(predictor, image: np.ndarray, points68: np.ndarray) -> np.ndarray:
    """Re-fit landmarks in the detector-style box implied by a previous fit (the predictor's training condition)."""
    return fit_landmarks(predictor, image, detector_box_from(points68))


class DlibBackend:
    """HOG detector (frontal faces, about 80 px and up) + dlib 68-point regression-tree predictor.

    Both read RGB or grey images. ``prepare`` gives grey, converted once per frame (in OpenCV, off the GIL),
    so the HOG pass works on one channel instead of three and the predictor reads intensities directly.
    """

    name = "dlib"

    def __init__(self, *, upsample: int = 0, threshold: float = 0.0):
        dlib = _import_dlib()
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = load_predictor()
        self.upsample = upsample
        self.threshold = threshold

    prepare = staticmethod(to_grey)

    @staticmethod
    def check() -> None:
        """The errors building this backend would raise, without loading the 95 MB model."""
        check_predictor()

    def detect(self, image: np.ndarray) -> list[Detection]:
        rects, scores, _ = self._detector.run(as_rgb_uint8(image, grey_ok=True), self.upsample, self.threshold)
        return [Detection(np.array([r.left(), r.top(), r.right(), r.bottom()], np.float32), s) for r, s in zip(rects, scores)]

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        return fit_landmarks(self._predictor, image, box)
