"""MTCNN face detector + dlib's 68-point predictor: finds the small, blurred, turned and partly cut faces that
dlib's HOG detector misses.

MTCNN (Zhang, Zhang, Li and Qiao 2016, "Joint Face Detection and Alignment using Multitask Cascaded
Convolutional Networks") is a cascade of three small nets: P-Net slides over an image pyramid and proposes
boxes, R-Net and O-Net re-score and refine them on 24 and 48 px crops; O-Net also gives 5 points. The nets and
their weights (``mmfer/weights/mtcnn/{pnet,rnet,onet}.pt``, 2 MB) come from Tim Esler's facenet-pytorch (MIT
licence, see ``mmfer/weights/mtcnn/LICENSE.md``); ``detect_faces`` is a compact rewrite of its
``detect_face`` for one image, with torchvision's nms and roi_align (crops are padded with black outside the
image, as in the original MTCNN, instead of being stretched).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from mmfer.errors import MmferError
from mmfer.faces.align import eye_centres
from mmfer.faces.base import Detection, as_rgb_uint8, to_grey
from mmfer.faces.dlib import check_predictor, fit_landmarks, load_predictor, refit_in_detector_box

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights" / "mtcnn"
NETS = ("pnet", "rnet", "onet")

# The box dlib's HOG detector gives for a face, from the MTCNN box (x0, y0, x1, y1, width w, height h): centre
# offset (dx * w, dy * h) and width, height (sw * w, sh * h); dlib's 68-point predictor was trained in HOG boxes
# and fits worse in others. Medians over the 985 faces both detectors found once, with IoU >= 0.4
# (`python tools/compare_detectors.py --per-class 30 --calibrate`): every frame of the 6 CREMA-D fixture
# videos (379, one actor: [0.061, 0.091, 1.099, 0.810]) and 606 of 840 placements of 210 FER2013 held-out faces
# at 96-256 px in 320x240 and 640x480 frames ([0.004, 0.058, 1.047, 0.804]); median absolute deviation
# 0.026-0.039. MTCNN's 5 points place the HOG box about as well (deviation in HOG box units: centre 0.019 / 0.031,
# size 0.044; from the box: 0.029 / 0.032 and 0.036 / 0.042), and the tracker hands ``landmarks`` boxes it
# carried along without points, so the map starts from the box. The 68 points fitted in the mapped box lie 3.5 %
# of the inter-ocular distance (mean) from those fitted in dlib's own HOG box; one re-fit in the box the first
# fit's points imply (refit_in_detector_box) brings that to 3.0 % (a second one does not help: 3.1 %), but costs
# a second fit on every frame the tracker fits (+2 ms a frame, about +50 ms per 3-s clip in predict), so it is
# off by default (MtcnnBackend(refits=1) turns it on).
MTCNN_TO_HOG = np.array([0.040, 0.073, 1.086, 0.808])

# The turned-image retry of dlib_mtcnn (MtcnnBackend.detect_turned), degrees: 140 held-out FER2013 faces at
# 192 px in 320x240 frames, MTCNN found 127 upright and 133 upright or turned 30 degrees either way; no face
# in 40 frames of noise either way.
TURNED_DEG = (30.0, -30.0)

# dlib_mtcnn's last resort, where HOG, MTCNN and its turned passes all found nothing: MTCNN at lower thresholds,
# its best box kept only where dlib's 68 points fitted in it agree with MTCNN's own five (mean distance of eye
# centres, nose tip and mouth corners, in MTCNN's inter-ocular distances). Lower thresholds alone find more
# blurred small faces but also faces in gravel and grass; the agreement tells them apart. Chosen on 210 held-out
# FER2013 faces that are not tools/video_gap.py's (64 and 96 px, degraded) and 380 face-free windows of natural
# pictures: the boxes of the faces it recovered agreed within 0.093-0.146, every face-free box at least 26 px
# wide disagreed by 0.157 or more (BENCHMARKS.md, "A confirmed last resort"). Those windows were searched at their
# own size (320x240), so the width is in the pixels of the image searched: a box narrower than that is no face
# however large the frame it is scaled back to (a 20-px box of gravel, searched in a 640x480 frame shrunk to
# predict's 320 px, agreed at 0.10 and came back 43 px wide, past the tracker's MIN_FACE_PX).
LAST_RESORT_THRESHOLDS = (0.4, 0.5, 0.5)
LAST_RESORT_MAX_DISAGREEMENT = 0.15
LAST_RESORT_MIN_WIDTH = 24.0  # MTCNN box px in the image searched (26 px of the HOG-style box it becomes)


def five_points(pts68: np.ndarray) -> np.ndarray:
    """MTCNN's five points from dlib's 68: image-left eye centre, image-right eye centre, nose tip, mouth
    corners left and right."""
    return np.concatenate([eye_centres(pts68), pts68[[30, 48, 54]]])


def points_disagreement(pts68: np.ndarray, pts5: np.ndarray) -> float:
    """Mean distance between MTCNN's five points and the same five of dlib's 68, in MTCNN's eye distance."""
    eyes = float(np.linalg.norm(pts5[1] - pts5[0]))
    return float(np.linalg.norm(five_points(pts68) - pts5, axis=1).mean() / max(eyes, 1e-6))


def weight_files() -> dict[str, Path]:
    return {n: WEIGHTS_DIR / f"{n}.pt" for n in NETS}


def check_weights() -> None:
    """The three weight files are there (they ship inside the mmfer package)."""
    for path in weight_files().values():
        if not path.is_file():
            raise MmferError(f"{path}: the MTCNN weight file is missing; reinstall mmfer (`pip install "
                             "--force-reinstall mmfer`, or `pip install -e .` in a checkout), which ships "
                             "mmfer/weights/mtcnn/*.pt, or choose --face-backend dlib")


def _nets():
    """The three nets' classes; built here so that importing this module does not import torch."""
    from torch import nn

    class PNet(nn.Module):  # 12x12 window, fully convolutional: (face prob, box regression) per 2-px step
        def __init__(self):
            super().__init__()
            self.conv1, self.prelu1, self.pool1 = nn.Conv2d(3, 10, 3), nn.PReLU(10), nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
            self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
            self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
            return self.conv4_2(x), self.conv4_1(x).softmax(1)

    class RNet(nn.Module):  # 24x24 crops
        def __init__(self):
            super().__init__()
            self.conv1, self.prelu1, self.pool1 = nn.Conv2d(3, 28, 3), nn.PReLU(28), nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2, self.prelu2, self.pool2 = nn.Conv2d(28, 48, 3), nn.PReLU(48), nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
            self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
            self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).flatten(1)  # the converted weights' (w, h) order
            x = self.prelu4(self.dense4(x))
            return self.dense5_2(x), self.dense5_1(x).softmax(1)

    class ONet(nn.Module):  # 48x48 crops; also 5 points (x0..x4, y0..y4) relative to the box
        def __init__(self):
            super().__init__()
            self.conv1, self.prelu1, self.pool1 = nn.Conv2d(3, 32, 3), nn.PReLU(32), nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2, self.prelu2, self.pool2 = nn.Conv2d(32, 64, 3), nn.PReLU(64), nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3, self.prelu3, self.pool3 = nn.Conv2d(64, 64, 3), nn.PReLU(64), nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
            self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
            self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.pool3(self.prelu3(self.conv3(x)))
            x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).flatten(1)
            x = self.prelu5(self.dense5(x))
            return self.dense6_2(x), self.dense6_3(x), self.dense6_1(x).softmax(1)

    return PNet, RNet, ONet


@functools.lru_cache(maxsize=1)
def load_nets():
    """(pnet, rnet, onet) in eval mode, weights from mmfer/weights/mtcnn (loaded once per process)."""
    import torch

    check_weights()
    nets = []
    for cls, path in zip(_nets(), weight_files().values()):
        with torch.random.fork_rng(devices=[]):  # random init, replaced by the weights: the caller's RNG untouched
            net = cls()
        try:
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as e:  # a truncated or foreign file
            raise MmferError(f"{path}: cannot load the MTCNN weights ({e}); reinstall mmfer") from None
        # channels-last: 3-4x faster convolutions and max-pools on CPU than NCHW here (torch 2.11)
        nets.append(net.eval().requires_grad_(False).to(memory_format=torch.channels_last))
    return tuple(nets)


def _regress(boxes, reg):
    """Boxes (N,4) moved by the nets' regression (N,4), in units of the box width and height."""
    wh = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    return boxes + reg * wh


def _square(boxes):
    """The square of the longer side around each box's centre (what R-Net and O-Net see)."""
    import torch

    c, side = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]).max(1, keepdim=True).values
    return torch.cat([c - side / 2, c + side / 2], 1)


def _crops(img, boxes, size: int):
    """(N,3,size,size) resampled crops of the image (1,3,H,W raw 0-255) in the boxes, black outside the image,
    normalised as the nets expect."""
    import torch
    from torchvision.ops import roi_align

    rois = torch.cat([boxes.new_zeros(len(boxes), 1), boxes + 1], 1)  # + 1: the black frame added below
    padded = torch.nn.functional.pad(img, (1, 1, 1, 1)).contiguous()  # roi_align repeats the edge: black instead
    # 2x2 samples per output pixel: within a pixel or two of area resampling, 3x faster than the adaptive count
    crops = roi_align(padded, rois, size, sampling_ratio=2, aligned=True)
    return ((crops - 127.5) / 128).contiguous(memory_format=torch.channels_last)


def _nms_min(boxes, scores, threshold: float):
    """Greedy NMS on intersection over the smaller area (a small box inside a bigger face goes), for the few
    boxes O-Net keeps."""
    import torch

    area = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0).prod(1)
    order, keep = scores.argsort(descending=True), []
    while len(order):
        i, rest = order[0], order[1:]
        keep.append(int(i))
        wh = (torch.minimum(boxes[i, 2:], boxes[rest, 2:]) - torch.maximum(boxes[i, :2], boxes[rest, :2])).clamp(min=0)
        order = rest[wh.prod(1) / torch.minimum(area[i], area[rest]).clamp(min=1e-6) <= threshold]
    return torch.tensor(keep, dtype=torch.long)


def detect_faces(image: np.ndarray, nets=None, *, min_size: float = 20.0,
                 thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
                 factor: float = 0.709) -> tuple[np.ndarray, np.ndarray]:
    """Faces in an RGB (or grey) uint8 image: boxes (N,5) float32 x0, y0, x1, y1, score and points (N,5,2) float32
    (image-left eye, image-right eye, nose tip, mouth corners left and right), in pixel coordinates (pixel i spans
    [i, i+1)). Faces from ``min_size`` px up; ``thresholds`` are P-, R- and O-Net's score thresholds and ``factor``
    the pyramid's scale step (the MTCNN defaults)."""
    import cv2
    import torch
    from torchvision.ops import nms

    pnet, rnet, onet = load_nets() if nets is None else nets
    image = as_rgb_uint8(image, grey_ok=True)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    h, w = image.shape[:2]
    img = torch.from_numpy(image).float().permute(2, 0, 1)[None]  # (1, 3, H, W) channels-last, 0-255
    none = np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)
    with torch.inference_mode():
        # 1. P-Net over a pyramid: each 2-px step of each scale is a 12-px window, kept if its score passes
        found, scale = [], 12.0 / min_size
        while min(h, w) * scale >= 12:
            small = cv2.resize(image, (int(w * scale + 1), int(h * scale + 1)), interpolation=cv2.INTER_AREA)
            reg, prob = pnet((torch.from_numpy(small).float().permute(2, 0, 1)[None] - 127.5) / 128)
            ys, xs = torch.nonzero(prob[0, 1] >= thresholds[0], as_tuple=True)
            if len(ys):
                corner = torch.stack([xs, ys], 1).float() * 2
                boxes = torch.cat([corner, corner + 12], 1) / scale
                cand = torch.cat([boxes, prob[0, 1, ys, xs, None], reg[0, :, ys, xs].T], 1)
                found.append(cand[nms(cand[:, :4], cand[:, 4], 0.5)])
            scale *= factor
        if not found:
            return none
        cand = torch.cat(found)
        cand = cand[nms(cand[:, :4], cand[:, 4], 0.7)]
        boxes = _square(_regress(cand[:, :4], cand[:, 5:9]))
        # 2. R-Net re-scores and refines 24-px crops
        reg, prob = rnet(_crops(img, boxes, 24))
        ok = prob[:, 1] > thresholds[1]
        boxes, scores, reg = boxes[ok], prob[ok, 1], reg[ok]
        keep = nms(boxes, scores, 0.7)
        boxes = _square(_regress(boxes[keep], reg[keep]))
        if not len(boxes):
            return none
        # 3. O-Net on 48-px crops: final score, box and 5 points
        reg, pts, prob = onet(_crops(img, boxes, 48))
        ok = prob[:, 1] > thresholds[2]
        boxes, scores, reg, pts = boxes[ok], prob[ok, 1], reg[ok], pts[ok]
        wh = boxes[:, 2:] - boxes[:, :2]
        points = torch.stack([pts[:, :5], pts[:, 5:]], 2) * wh[:, None] + boxes[:, None, :2]
        boxes = _regress(boxes, reg)
        keep = _nms_min(boxes, scores, 0.7)
        out = torch.cat([boxes[keep], scores[keep, None]], 1)
        return out.numpy().astype(np.float32).reshape(-1, 5), points[keep].numpy().astype(np.float32).reshape(-1, 5, 2)


def hog_box_from_mtcnn(box: np.ndarray) -> np.ndarray:
    """The box dlib's HOG detector would likely give for a face MTCNN boxed (see MTCNN_TO_HOG)."""
    b = np.asarray(box, dtype=np.float64)[:4]
    wh = b[2:] - b[:2]
    centre, size = (b[:2] + b[2:]) / 2 + MTCNN_TO_HOG[:2] * wh, MTCNN_TO_HOG[2:] * wh
    return np.concatenate([centre - size / 2, centre + size / 2]).astype(np.float32)


class MtcnnBackend:
    """MTCNN boxes (faces from ``min_size`` px, blurred, turned, partly outside the frame) + dlib's 68 points,
    fitted in the HOG-style box the MTCNN box maps to (and ``refits`` times more in the box those points imply).

    Reads RGB or grey; there is no ``prepare``: MTCNN sees colour, and dlib's predictor reads RGB as fast as grey.
    """

    name = "mtcnn"

    def __init__(self, *, min_size: float = 20.0, thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
                 factor: float = 0.709, refits: int = 0):
        self._nets = load_nets()
        self._predictor = load_predictor()
        self.min_size, self.thresholds, self.factor, self.refits = min_size, tuple(thresholds), factor, int(refits)

    @staticmethod
    def check() -> None:
        """The errors building this backend would raise (a weight file or dlib's predictor missing), without
        loading anything."""
        check_weights()
        check_predictor()

    def detect_with_points(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return detect_faces(image, self._nets, min_size=self.min_size, thresholds=self.thresholds, factor=self.factor)

    def detect(self, image: np.ndarray) -> list[Detection]:
        boxes, _ = self.detect_with_points(image)
        return [Detection(b[:4], b[4]) for b in boxes]

    def detect_turned(self, image: np.ndarray, angles: tuple[float, ...] = TURNED_DEG) -> list[Detection]:
        """Faces in the image turned by each angle in turn (until one finds some), as upright boxes in the
        image: a head rolled past MTCNN's reach. The box keeps its size and is centred where the face is;
        ``fit_landmarks`` turns the face upright to fit it."""
        import cv2

        h, w = image.shape[:2]
        for angle in angles:
            turn = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
            found = self.detect(cv2.warpAffine(np.ascontiguousarray(image), turn, (w, h), flags=cv2.INTER_LINEAR))
            if found:
                back = cv2.invertAffineTransform(turn)
                out = []
                for d in found:
                    centre = ((d.box[:2] + d.box[2:]) / 2) @ back[:, :2].T + back[:, 2]
                    half = (d.box[2:] - d.box[:2]) / 2
                    out.append(Detection(np.concatenate([centre - half, centre + half]).astype(np.float32), d.score))
                return out
        return []

    def detect_confirmed(self, image: np.ndarray) -> list[Detection]:
        """The best box at LAST_RESORT_THRESHOLDS, where it is at least LAST_RESORT_MIN_WIDTH wide in ``image``
        and dlib's 68 points fitted in it agree with MTCNN's five (``points_disagreement`` at most
        LAST_RESORT_MAX_DISAGREEMENT); otherwise nothing."""
        boxes, pts = detect_faces(image, self._nets, min_size=self.min_size, thresholds=LAST_RESORT_THRESHOLDS,
                                  factor=self.factor)
        if not len(boxes):
            return []
        best = int(np.argmax(boxes[:, 4]))
        if float(boxes[best, 2] - boxes[best, 0]) < LAST_RESORT_MIN_WIDTH:
            return []
        fitted = fit_landmarks(self._predictor, image, hog_box_from_mtcnn(boxes[best]), upright=False)
        if not points_disagreement(fitted, pts[best]) <= LAST_RESORT_MAX_DISAGREEMENT:  # NaN is no agreement
            return []
        return [Detection(boxes[best, :4], boxes[best, 4])]

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        pts = fit_landmarks(self._predictor, image, hog_box_from_mtcnn(box))
        for _ in range(self.refits):
            pts = refit_in_detector_box(self._predictor, image, pts)
        return pts


class DlibMtcnnBackend:
    """dlib's HOG detector first, MTCNN where it finds nothing: today's speed on the faces HOG sees (a HOG pass
    costs a few times less than an MTCNN one, most of all in the tracker's small search regions), MTCNN's
    recall on the rest. MTCNN boxes are mapped to HOG geometry (``hog_box_from_mtcnn``), so every box this
    backend gives is a HOG-style box and dlib's predictor fits in it directly.

    Works on grey (``prepare``), like the dlib backend; MTCNN sees the grey image in its three channels.
    """

    name = "dlib_mtcnn"

    def __init__(self, **mtcnn_options):
        from mmfer.faces.dlib import DlibBackend

        self._hog = DlibBackend()
        self._mtcnn = MtcnnBackend(**mtcnn_options)
        self._predictor = load_predictor()

    prepare = staticmethod(to_grey)

    @staticmethod
    def check() -> None:
        MtcnnBackend.check()

    def detect(self, image: np.ndarray) -> list[Detection]:
        """HOG; where it finds nothing, MTCNN; where that finds nothing, MTCNN on the image turned both ways
        (``TURNED_DEG``); last, MTCNN at lower thresholds where dlib's points confirm its box
        (``MtcnnBackend.detect_confirmed``)."""
        found = self._hog.detect(image)
        if found:
            return found
        found = (self._mtcnn.detect(image) or self._mtcnn.detect_turned(image)
                 or self._mtcnn.detect_confirmed(image))
        return [Detection(hog_box_from_mtcnn(d.box), d.score) for d in found]

    def detect_quick(self, image: np.ndarray) -> list[Detection]:
        """HOG alone: the tracker's every-frame search; it calls ``detect`` (MTCNN too) only on its rationed
        retries, so footage without a face does not pay MTCNN on every frame."""
        return self._hog.detect(image)

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        return fit_landmarks(self._predictor, image, box)
