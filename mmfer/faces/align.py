"""The iBUG-68 mean face template and similarity alignment of faces onto it.

Alignment uses a similarity transform (rotation, uniform scale, translation) fitted on the eyes and
nose only: those points are rigid, while the mouth and brows move with the expression we want to keep.
"""

from __future__ import annotations

import functools

import numpy as np

# Mean iBUG-68 face shape (x, y) in OpenFace's normalised units (OpenFace, Apache-2.0, from
# dlib 68-point fits); kept raw so template_68 can scale it uniformly.
_MEAN_SHAPE = np.array(
    [
        (0.0792396913815, 0.339223741112), (0.0829219487236, 0.456955367943),
        (0.0967927109165, 0.575648016728), (0.122141515615, 0.691921601066),
        (0.168687863544, 0.800341263616), (0.239789390707, 0.895732504778),
        (0.325662452515, 0.977068762493), (0.422318282013, 1.04329000149),
        (0.531777802068, 1.06080371126), (0.641296298053, 1.03981924107),
        (0.738105872266, 0.972268833998), (0.824444363295, 0.889624082279),
        (0.894792677532, 0.792494155836), (0.939395486253, 0.681546643421),
        (0.96111933829, 0.562238253072), (0.970579841181, 0.441758925744),
        (0.971193274221, 0.322118743967), (0.163846223133, 0.249151738053),
        (0.21780354657, 0.204255863861), (0.291299351124, 0.192367318323),
        (0.367460241458, 0.203582210627), (0.4392945113, 0.233135599851),
        (0.586445962425, 0.228141644834), (0.660152671635, 0.195923841854),
        (0.737466449096, 0.182360984545), (0.813236546239, 0.192828009114),
        (0.8707571886, 0.235293377042), (0.51534533827, 0.31863546193),
        (0.516221448289, 0.396200446263), (0.517118861835, 0.473797687758),
        (0.51816430343, 0.553157797772), (0.433701156035, 0.604054457668),
        (0.475501237769, 0.62076344024), (0.520712933176, 0.634268222208),
        (0.565874114041, 0.618796581487), (0.607054002672, 0.60157671656),
        (0.252418718401, 0.331052263829), (0.298663015648, 0.302646354002),
        (0.355749724218, 0.303020650651), (0.403718978315, 0.33867711083),
        (0.352507175597, 0.349987615384), (0.296791759886, 0.350478978225),
        (0.631326076346, 0.334136672344), (0.679073381078, 0.29645404267),
        (0.73597236153, 0.294721285802), (0.782865376271, 0.321305281656),
        (0.740312274764, 0.341849376713), (0.68499850091, 0.343734332172),
        (0.353167761422, 0.746189164237), (0.414587777921, 0.719053835073),
        (0.477677654595, 0.706835892494), (0.522732900812, 0.717092275768),
        (0.569832064287, 0.705414478982), (0.635195811927, 0.71565572516),
        (0.69951672331, 0.739419187253), (0.639447159575, 0.805236879972),
        (0.576410514055, 0.835436670169), (0.525398405766, 0.841706377792),
        (0.47641545769, 0.837505914975), (0.41379548902, 0.810045601727),
        (0.380084785646, 0.749979603086), (0.477955996282, 0.74513234612),
        (0.523389793327, 0.748924302636), (0.571057789237, 0.74332894691),
        (0.672409137852, 0.744177032192), (0.572539621444, 0.776609286626),
        (0.5240106503, 0.783370783245), (0.477561227414, 0.778476346951),
    ],
    dtype=np.float64,
)

EYE_LEFT = slice(36, 42)  # image-left eye (the subject's right eye)
EYE_RIGHT = slice(42, 48)
NOSE = slice(27, 36)
MOUTH = slice(48, 68)
JAW = slice(0, 17)
BROWS = slice(17, 27)
# Points the similarity is fitted on: both eyes and the nose (rigid, expression-independent).
_ALIGN_SLICE = slice(NOSE.start, EYE_RIGHT.stop)  # nose and both eyes, as a view for per-frame code
ALIGN_POINTS = np.arange(68)[_ALIGN_SLICE]

_lo, _hi = _MEAN_SHAPE.min(axis=0), _MEAN_SHAPE.max(axis=0)
TEMPLATE_68: np.ndarray = ((_MEAN_SHAPE - _lo) / (_hi - _lo)).astype(np.float32)
"""(68, 2) float32 mean face, x and y each min-max scaled to [0, 1] (OpenFace "MINMAX" template)."""

# Placement inside a crop (fractions of crop size): the jaw spans FACE_WIDTH of the width, centred,
# and the eye centres sit at EYE_HEIGHT; this leaves the forehead and a margin below the chin.
FACE_WIDTH = 0.70
EYE_HEIGHT = 0.36


def eye_centres(points68: np.ndarray) -> np.ndarray:
    """(..., 68, 2) -> (..., 2, 2): rows are the image-left and image-right eye centres."""
    p = np.asarray(points68)
    return np.stack([p[..., EYE_LEFT, :].mean(axis=-2), p[..., EYE_RIGHT, :].mean(axis=-2)], axis=-2)


def rigid_frame(points68: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and RMS radius of the eyes + nose points: where the head is and how big, whatever the mouth does."""
    p = np.asarray(points68, dtype=np.float64).reshape(68, 2)[_ALIGN_SLICE]
    c = p.mean(axis=0)
    d = p - c
    return c, float(np.sqrt((d * d).sum() / len(p)))


def box_in_rigid_frame(points68: np.ndarray | None, rel: np.ndarray, *,
                       frame: tuple[np.ndarray, float] | None = None) -> np.ndarray:
    """The box (x0, y0, x1, y1) float32 whose centre offset and width, height are ``rel`` in units of the rigid
    radius of ``points68`` (see rigid_frame): a face box carried along by the landmarks. ``frame`` passes
    rigid_frame(points68) when the caller has it already (the tracker, once per frame)."""
    c, r = frame if frame is not None else rigid_frame(points68)
    centre, wh = c + rel[:2] * r, rel[2:] * r
    return np.concatenate([centre - wh / 2, centre + wh / 2]).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _template(crop_size: int) -> np.ndarray:
    s = FACE_WIDTH / (_hi[0] - _lo[0])
    pts = (_MEAN_SHAPE - _MEAN_SHAPE.mean(axis=0)) * s
    pts[:, 0] += 0.5 - (pts[:, 0].min() + pts[:, 0].max()) / 2
    pts[:, 1] += EYE_HEIGHT - eye_centres(pts)[:, 1].mean()
    out = (pts * crop_size).astype(np.float32)
    out.flags.writeable = False  # shared by every caller
    return out


def template_68(crop_size: int) -> np.ndarray:
    """The mean face placed in a crop_size x crop_size crop (uniform scale, so faces keep their shape)."""
    return _template(int(crop_size)).copy()


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama 1991) mapping src (N,2) onto dst (N,2): a (2,3) matrix.

    Closed form, no RANSAC: landmarks have no outliers to reject and the result must be deterministic.
    """
    src = np.asarray(src, dtype=np.float64)
    if ((src - src.mean(axis=0)) ** 2).sum() / len(src) < 1e-12:
        raise ValueError("similarity_transform: source points are all the same")
    return similarity_transforms(src[None], np.asarray(dst, dtype=np.float64))[0]


def similarity_transforms(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``similarity_transform`` for a batch: src (B,N,2) onto dst (N,2) or (B,N,2) -> (B,2,3), in a few numpy
    calls instead of a Python loop (one per aligned frame). Degenerate sources give NaN matrices."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.broadcast_to(np.asarray(dst, dtype=np.float64), src.shape)
    n = src.shape[-2]
    mu_s, mu_d = src.mean(axis=-2, keepdims=True), dst.mean(axis=-2, keepdims=True)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum(axis=(-2, -1)) / n
    cov = np.swapaxes(d, -1, -2) @ s / n
    u, sig, vt = np.linalg.svd(cov)
    e = np.ones(src.shape[:-2] + (2,))
    e[..., 1] = np.where(np.linalg.det(u) * np.linalg.det(vt) < 0, -1.0, 1.0)  # no reflections
    rot = (u * e[..., None, :]) @ vt
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(var_s < 1e-12, np.nan, (sig * e).sum(axis=-1) / var_s)
    m = np.empty(src.shape[:-2] + (2, 3))
    m[..., :2] = scale[..., None, None] * rot
    m[..., 2] = mu_d[..., 0, :] - (m[..., :2] @ mu_s[..., 0, :, None])[..., 0]
    return m


def alignment_matrix(points68: np.ndarray, crop_size: int) -> np.ndarray:
    """(2,3) similarity taking a frame's 68 points onto template_68(crop_size), fitted on eyes + nose only."""
    pts = np.asarray(points68, dtype=np.float64).reshape(68, 2)
    return similarity_transform(pts[ALIGN_POINTS], _template(int(crop_size))[ALIGN_POINTS])


def alignment_matrices(points68: np.ndarray, crop_size: int) -> np.ndarray:
    """(B,2,3) alignment matrices of a batch of (B,68,2) landmarks, in one vectorised fit."""
    pts = np.asarray(points68, dtype=np.float64).reshape(-1, 68, 2)
    return similarity_transforms(pts[:, ALIGN_POINTS], _template(int(crop_size))[ALIGN_POINTS])


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2,3) affine matrix to (..., 2) points."""
    p = np.asarray(points, dtype=np.float64)
    return (p @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def align_face(frame: np.ndarray, points68: np.ndarray, crop_size: int) -> np.ndarray:
    """One aligned crop uint8 (S, S, 3): the face warped so its eyes and nose sit on the template."""
    return _warp(frame, alignment_matrix(points68, crop_size), crop_size)


def _warp(frame: np.ndarray, matrix: np.ndarray, crop_size: int) -> np.ndarray:
    import cv2

    return cv2.warpAffine(np.ascontiguousarray(frame), matrix, (crop_size, crop_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def align_frames(frames: np.ndarray, landmarks: np.ndarray, mask: np.ndarray, *, crop_size: int = 112) -> np.ndarray:
    """Aligned crops uint8 (B, S, S, 3) for a batch; frames without a face (mask False) stay all zeros.

    The matrices are fitted for the whole batch at once; only the warp (in C, off the GIL) runs per frame.
    """
    frames = np.asarray(frames)
    out = np.zeros((len(frames), crop_size, crop_size, 3), dtype=np.uint8)
    landmarks = np.asarray(landmarks)
    ok = np.flatnonzero(np.asarray(mask, dtype=bool) & np.isfinite(landmarks).reshape(len(landmarks), -1).all(axis=1))
    if len(ok):
        for i, m in zip(ok, alignment_matrices(landmarks[ok], crop_size)):
            if np.isfinite(m).all():
                out[i] = _warp(frames[i], m, crop_size)
    return out


# How FER2013's 48x48 images frame a face (loose face-detector crops, brows to chin, a little background):
# centre x, centre y and RMS radius of the eyes + nose points (mmfer.faces.align.rigid_frame) as fractions
# of the image side; medians over the 275 of 400 random FER2013 training images in which dlib found a face
# (inter-quartile ranges 0.48-0.52, 0.45-0.49, 0.17-0.20). Aligned crops have more margin (radius 0.155).
FER2013_RIGID = (0.499, 0.473, 0.184)


def framing_box(crop_size: int, rigid: tuple[float, float, float] = FER2013_RIGID) -> tuple[int, int, int, int]:
    """The square (x0, y0, x1, y1) of a ``crop_size`` aligned crop that frames the face as ``rigid`` describes.

    Why: a face model sees faces framed as in training. Alignment puts every face's eyes and nose on the
    same template, so the matching box is one fixed square of the aligned crop: where the template's rigid
    points sit, scaled and shifted to where ``rigid`` has them. For 112-px crops and FER2013: (8, 4, 103, 99).
    """
    c, r = rigid_frame(template_68(crop_size))
    scale = r / rigid[2]
    side = min(crop_size, int(round(scale)))
    x0 = int(np.clip(round(c[0] - rigid[0] * scale), 0, crop_size - side))
    y0 = int(np.clip(round(c[1] - rigid[1] * scale), 0, crop_size - side))
    return x0, y0, x0 + side, y0 + side
