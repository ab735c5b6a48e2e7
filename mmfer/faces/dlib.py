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


def fit_landmarks(predictor, image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Run a dlib shape predictor in ``box`` of an RGB or grey image: (68, 2) float32 image pixels."""
    import dlib

    x0, y0, x1, y1 = (int(round(float(v))) for v in np.asarray(box, dtype=np.float64)[:4])
    shape = predictor(as_rgb_uint8(image, grey_ok=True), dlib.rectangle(x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


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
