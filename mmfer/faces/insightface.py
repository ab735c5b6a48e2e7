"""Optional backend on the user's own insightface model pack (SCRFD/RetinaFace detector + 3D-68 landmarks).

Models are read from disk only: ``$MMFER_INSIGHTFACE_ROOT`` or ``~/.insightface/models/buffalo_l``.
insightface would download a pack by itself; we never let it, so a missing pack is a clear error instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mmfer.errors import MmferError
from mmfer.faces.base import Detection, as_rgb_uint8

ENV_ROOT = "MMFER_INSIGHTFACE_ROOT"
DEFAULT_ROOT = "~/.insightface/models/buffalo_l"
DETECTOR_GLOBS = ("det_*.onnx", "scrfd*.onnx", "retinaface*.onnx")
LANDMARK_GLOBS = ("1k3d68.onnx", "*3d68*.onnx")
_WHAT = (
    "put an insightface model pack there (e.g. buffalo_l: det_10g.onnx and 1k3d68.onnx), "
    f"or point {ENV_ROOT} at the folder that holds them, or use --face-backend dlib"
)


def model_root() -> Path:
    return Path(os.environ.get(ENV_ROOT) or DEFAULT_ROOT).expanduser()


def _find(root: Path, patterns: tuple[str, ...]) -> Path | None:
    for pattern in patterns:
        hits = sorted(root.glob(pattern))
        if hits:
            return hits[0]
    return None


def find_models(root: Path | None = None) -> tuple[Path, Path]:
    """(detector, landmark_3d_68) ONNX files in the pack folder, or a MmferError saying what to put where."""
    root = model_root() if root is None else Path(root)
    if not root.is_dir():
        raise MmferError(f"insightface backend: model folder {root} does not exist; {_WHAT}")
    det, lmk = _find(root, DETECTOR_GLOBS), _find(root, LANDMARK_GLOBS)
    missing = [what for what, f in (("a detector det_*.onnx", det), ("the 68-point model 1k3d68.onnx", lmk)) if f is None]
    if missing:
        raise MmferError(f"insightface backend: {root} has no {' and no '.join(missing)}; {_WHAT}")
    return det, lmk


class InsightFaceBackend:
    """insightface detector boxes + ``landmark_3d_68`` points (x, y of the 68 iBUG points, image pixels)."""

    name = "insightface"

    def __init__(self, *, root: str | Path | None = None, det_size: int = 640, det_thresh: float = 0.5):
        det_file, lmk_file = find_models(None if root is None else Path(root))
        try:
            from insightface.app.common import Face
            from insightface.model_zoo import model_zoo
        except ImportError as e:
            raise MmferError(
                f"the insightface face backend needs the insightface and onnxruntime packages ({e}); "
                "install them with `pip install mmfer[insightface]` or use --face-backend dlib"
            ) from None
        providers = ["CPUExecutionProvider"]
        self._face_cls = Face
        self._det = model_zoo.get_model(str(det_file), providers=providers)
        self._lmk = model_zoo.get_model(str(lmk_file), providers=providers)
        if self._det is None or self._lmk is None:
            raise MmferError(f"insightface backend: cannot load {det_file} / {lmk_file} as insightface models; {_WHAT}")
        self._det.prepare(ctx_id=-1, input_size=(det_size, det_size), det_thresh=det_thresh)
        self._lmk.prepare(ctx_id=-1)

    @staticmethod
    def _bgr(image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(as_rgb_uint8(image)[..., ::-1])  # insightface works on BGR (cv2) images

    def detect(self, image: np.ndarray) -> list[Detection]:
        bboxes, _ = self._det.detect(self._bgr(image), max_num=0, metric="default")
        return [Detection(b[:4], float(b[4])) for b in np.asarray(bboxes).reshape(-1, 5)]

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        face = self._face_cls(bbox=np.asarray(box, dtype=np.float32)[:4])
        pts = self._lmk.get(self._bgr(image), face)
        return np.asarray(pts, dtype=np.float32)[:, :2].reshape(68, 2)
