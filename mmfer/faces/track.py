"""Following one person's face through a clip: boxes, 68-point landmarks and a face mask per frame.

AFEW movie clips often show several people. Taking the biggest face in each frame would jump between
them, so the tracker locks on to the largest face once and then prefers detections that overlap or sit
near the previous box; it only switches person after the target has been missing for ``lost_patience``
frames. Frames without the target keep their place in the sequence (mask False, NaN arrays).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from mmfer.faces.align import box_in_rigid_frame, rigid_frame
from mmfer.faces.base import Detection, FaceBackend, call_backend, checked_detections, landmarks_of


@dataclass
class FaceTrack:
    """Per-frame results: boxes (T,5) x0,y0,x1,y1,score, landmarks (T,68,2), mask (T,); NaN where no face.

    ``track`` (T,) numbers the stretches the tracker followed one face: 1 for the first face locked on to, 2
    for the next after it was lost for good (``lost_patience`` frames), and so on; 0 where no face. A person who
    leaves and comes back later gets a new number: a track is a stretch, not an identity."""

    boxes: np.ndarray
    landmarks: np.ndarray
    mask: np.ndarray
    track: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.track is None:
            self.track = np.asarray(self.mask, bool).astype(np.int32)

    def __len__(self) -> int:
        return int(self.mask.shape[0])

    @classmethod
    def empty(cls, n: int) -> "FaceTrack":
        return cls(
            boxes=np.full((n, 5), np.nan, np.float32),
            landmarks=np.full((n, 68, 2), np.nan, np.float32),
            mask=np.zeros(n, bool),
            track=np.zeros(n, np.int32),
        )

    @classmethod
    def concat(cls, tracks: list["FaceTrack"]) -> "FaceTrack":
        if not tracks:
            return cls.empty(0)
        return cls(
            boxes=np.concatenate([t.boxes for t in tracks]),
            landmarks=np.concatenate([t.landmarks for t in tracks]),
            mask=np.concatenate([t.mask for t in tracks]),
            track=np.concatenate([t.track for t in tracks]),
        )

    @property
    def face_ratio(self) -> float:
        return float(self.mask.mean()) if len(self) else 0.0


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x0,y0,x1,y1 boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, float(w)) * max(0.0, float(h))
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0


class FaceTracker:
    """Detect, pick the target face, fit landmarks (full resolution); keeps state across batches.

    Where the time goes is the detector (a HOG pass costs several landmark fits), so it runs as little as
    tracking allows:

    * With ``detect_every`` k > 1 the detector runs on the first fitted frame at least k frames after the last
      detection; in between, landmarks are fitted in a box carried by the last fit's landmarks (moved on at
      the face's last velocity), and the detector runs early when that fit looks lost (implausible size, or
      a jump of more than half the eyes-and-nose radius per frame from where the face was expected).
    * While a face is followed, the detector looks only at a region around it, scaled so the face is about
      ``ROI_FACE_PX`` wide (a fraction of a whole frame's pixels, whatever the frame size; small faces are
      enlarged to detectable size). That scale is kept while the face size stays near it, so the detector's
      box, quantised by its image pyramid, does not jitter. The whole frame, downscaled to
      ``detect_max_side``, is searched only when that misses or nobody is followed yet.
    * With ``fit_every`` k > 1 landmarks are fitted on every k-th frame only (and on each batch's last frame);
      the frames between two fits of the same face get the linear interpolation of the two. On the CREMA-D
      fixtures at 30 fps, k = 3 puts those frames within 1.1 % of the inter-ocular distance (mean) of a fit of
      their own, a little more than a fit moves when its box shifts by 3 % (0.7 %), and the track is smoother.
      A face hidden for fewer than k frames between two fits of it is filled in too, unless the frame is flat
      there (black, faded out). Where the two fits disagree or one
      has no face (another person, a cut, a face coming in or going out), the frames between are searched
      by the detector near the face and fitted one by one.
    * A whole-frame miss is retried at ``retry_max_side`` (small faces in big frames), on the first miss and
      then once ``retry_every`` frames have passed, so long stretches without a face do not pay the big pass
      every frame.
    """

    ROI_FACE_PX = 95  # target box width in the region-of-interest image (dlib's HOG window is 80 px)
    ROI_KEEP = (0.9, 1.2)  # keep the region scale while the face there stays within these factors of ROI_FACE_PX
    ROI_MARGIN = 0.25  # region = the target box grown by this fraction of its width on each side
    RETRY_UPSCALE = 2.0  # a whole-frame miss is retried at least at this multiple of detect_max_side
    # Detections narrower than this in the frame (the backend's box convention, px) are not faces: on 380 face-free
    # 320x240 windows of natural images (coins, grass, gravel), dlib_mtcnn boxed a false face in 16, 8 of them this
    # narrow; of the 449 boxes MTCNN gave on 210 held-out FER2013 faces in video frames (64-192 px faces, clean and
    # degraded), none was (36 px at the 5th percentile). 26 px of dlib_mtcnn's HOG-style box is a 24-px MTCNN box;
    # a face that small is also below what the face models read well (FER2013 is 48 px).
    MIN_FACE_PX = 26.0

    def __init__(
        self,
        backend: FaceBackend,
        *,
        detect_max_side: int = 320,
        detect_every: int = 1,
        fit_every: int = 1,
        lost_patience: int = 15,
        min_iou: float = 0.3,
        retry_max_side: int | None = None,
        retry_every: int = 5,
        min_face_px: float = MIN_FACE_PX,
    ):
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        if fit_every < 1:
            raise ValueError(f"fit_every must be >= 1, got {fit_every}")
        self.backend = backend
        self._prepare = getattr(backend, "prepare", None) or (lambda image: image)
        self._quick = getattr(backend, "detect_quick", None) or backend.detect  # the every-frame search
        self._thorough = getattr(backend, "detect_quick", None) is not None  # retries use the full detect
        self.detect_max_side = int(detect_max_side)
        self.detect_every = int(detect_every)
        self.fit_every = int(fit_every)
        self.lost_patience = int(lost_patience)
        self.min_iou = float(min_iou)
        # a miss at detect_max_side is retried at this longest side (small faces in big frames, e.g. AFEW
        # 720x576 with faces under ~180 px); 0 turns the retry off
        self.retry_max_side = 4 * self.detect_max_side if retry_max_side is None else int(retry_max_side)
        self.retry_every = max(1, int(retry_every))  # frames between two big retries while nobody is found
        self.min_face_px = float(min_face_px)
        self.reset()

    def reset(self) -> None:
        """Forget the target (call between clips if one tracker is reused)."""
        self._target: np.ndarray | None = None  # last box of the followed face (detector convention)
        self._score = float("nan")
        self._lost = 0  # consecutive frames without the target
        self._last: tuple[np.ndarray, np.ndarray] | None = None  # (landmarks, box) of the last fitted frame, if a face
        self._last_frame: tuple[np.ndarray, float] | None = None  # rigid_frame of those landmarks
        self._frame_no = 0  # frames of the clip seen so far (places the fitted frames)
        self._since_retry: int | None = None  # frames since the big retry, None before one in this miss streak
        self._velocity = np.zeros(2)  # of the rigid centre, pixels per frame, from the last two fits of the face
        self._box_rel: np.ndarray | None = None  # detector box relative to the rigid landmark frame
        self._since_detect = 0
        self._ref_look: np.ndarray | None = None  # the last detection's box patch (_look), which carried fits match
        self._roi_scale: float | None = None
        self.detections_run = 0
        self._track_id = 0  # number of the face followed now (FaceTrack.track)
        self._new_face = False  # _choose took a face that is not the target (a first lock, or a switch)
        # seconds spent in the detector and in landmark fitting, for the stage split of ``mmfer bench``
        self.seconds = {"detect": 0.0, "landmarks": 0.0}

    # ------------------------------------------------------------------ detection and target choice
    def _find(self, image: np.ndarray) -> Detection | None:
        """The target in this frame: near where it was first, then anywhere in the frame."""
        if self._target is not None:
            det = self._choose(self._detect_near(image, self._target))
            if det is not None:
                return det
        dets, scale = self._detect_at(image, self.detect_max_side)
        # the retry looks at the frame larger: at its own size up to retry_max_side, and a small frame enlarged
        # to RETRY_UPSCALE x detect_max_side (a 60-px face in a 320x240 frame is under the HOG window's 80 px)
        # A backend with a cheaper ``detect_quick`` (dlib_mtcnn: HOG alone) searches with it on every frame and
        # with its full ``detect`` (HOG, then MTCNN, MTCNN on the frame turned both ways, MTCNN's confirmed last
        # resort) here, so frames with nobody in them pay for the costly detector once every retry_every frames,
        # not on every frame.
        side = max(image.shape[:2])
        retry_scale = min(self.retry_max_side / side, max(1.0, self.RETRY_UPSCALE * self.detect_max_side / side))
        bigger = retry_scale > scale * 1.05 and self.retry_max_side > self.detect_max_side
        thorough = self._thorough
        if not dets and (bigger or thorough) and (self._since_retry is None or self._since_retry >= self.retry_every):
            self._since_retry = 0
            if thorough:
                dets, _ = self._detect_at(image, self.detect_max_side, detector=self.backend.detect)
            if not dets and bigger:
                dets, _ = self._detect_at(image, int(round(retry_scale * side)), upscale=True)
        return self._choose(dets)

    def _detect_near(self, image: np.ndarray, box: np.ndarray) -> list[Detection]:
        """Detections in a region around ``box``, scaled so the face is about ROI_FACE_PX wide (frame pixels)."""
        import cv2

        h, w = image.shape[:2]
        bw = max(float(box[2] - box[0]), 1.0)
        pad = self.ROI_MARGIN * bw
        x0, y0 = max(0, int(box[0] - pad)), max(0, int(box[1] - pad))
        x1, y1 = min(w, int(np.ceil(box[2] + pad))), min(h, int(np.ceil(box[3] + pad)))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return []
        lo, hi = self.ROI_KEEP
        if self._roi_scale is None or not lo * self.ROI_FACE_PX <= bw * self._roi_scale <= hi * self.ROI_FACE_PX:
            self._roi_scale = min(2.0, self.ROI_FACE_PX / bw)
        scale = self._roi_scale
        roi = image[y0:y1, x0:x1]
        if abs(scale - 1.0) > 0.05:
            size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
            roi = cv2.resize(roi, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        else:
            scale = 1.0
        offset = np.array([x0, y0, x0, y0], np.float32)
        dets = self._detect(self._quick, np.ascontiguousarray(roi))
        return self._wide_enough([Detection(d.box / scale + offset, d.score) for d in dets])

    def _detect_at(self, image: np.ndarray, max_side: int, *, upscale: bool = False,
                   detector=None) -> tuple[list[Detection], float]:
        import cv2

        h, w = image.shape[:2]
        scale = max_side / max(h, w) if max_side > 0 else 1.0
        if not upscale:
            scale = min(1.0, scale)
        small = image
        if abs(scale - 1.0) > 1e-3:
            small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR)
        dets = self._detect(detector or self._quick, small)
        if small is not image:
            dets = [Detection(d.box / scale, d.score) for d in dets]
        return self._wide_enough(dets), scale

    def _wide_enough(self, dets: list[Detection]) -> list[Detection]:
        """The detections at least ``min_face_px`` wide in the frame (see MIN_FACE_PX)."""
        return [d for d in dets if float(d.box[2] - d.box[0]) >= self.min_face_px]

    def _detect(self, detector, image: np.ndarray) -> list[Detection]:
        t = time.perf_counter()
        self.detections_run += 1
        dets = checked_detections(self.backend, call_backend(self.backend, detector, image), image.shape[:2])
        self.seconds["detect"] += time.perf_counter() - t
        return dets

    def _landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """The 68 points in ``box``, or None where the backend's answer is no face (``checked_landmarks``)."""
        t = time.perf_counter()
        pts = landmarks_of(self.backend, image, box)
        self.seconds["landmarks"] += time.perf_counter() - t
        return pts

    def _choose(self, dets: list[Detection]) -> Detection | None:
        self._new_face = False
        if not dets:
            return None
        if self._target is None:
            self._new_face = True
            return max(dets, key=lambda d: d.area)
        t = self._target
        overlaps = [iou(d.box, t) for d in dets]
        best = int(np.argmax(overlaps))
        if overlaps[best] >= self.min_iou:
            return dets[best]
        # no overlap (fast motion or a missed frame): accept a similar-sized face near the old position
        tc, tw = (t[:2] + t[2:]) / 2, float(t[2] - t[0])
        near = []
        for d in dets:
            dist = float(np.linalg.norm((d.box[:2] + d.box[2:]) / 2 - tc))
            ratio = float(d.box[2] - d.box[0]) / max(tw, 1e-6)
            if dist < 0.6 * tw and 0.6 < ratio < 1.6:
                near.append((dist, d))
        if near:
            return min(near, key=lambda x: x[0])[1]
        if self._lost >= self.lost_patience:  # the target is gone for good: follow someone else
            self._new_face = True
            return max(dets, key=lambda d: d.area)
        return None

    # ------------------------------------------------------------------ landmark-carried boxes
    def _remember(self, box: np.ndarray, frame: tuple[np.ndarray, float]) -> None:
        c, r = frame
        bc, bwh = (box[:2] + box[2:]) / 2, box[2:] - box[:2]
        self._box_rel = np.concatenate([(bc - c) / r, bwh / r])

    @staticmethod
    def _fit_ok(frame: tuple[np.ndarray, float], prev: tuple[np.ndarray, float], frames: int = 1) -> bool:
        """A fit that kept its size and moved less than half its rigid radius per frame from ``prev`` (rigid
        frames of this fit and of the earlier one, or where that one was predicted to be, ``frames`` apart)."""
        (c0, r0), (c1, r1) = prev, frame
        return bool(r1 > 1.0 and 0.8 < r1 / max(r0, 1e-6) < 1.25
                    and float(np.hypot(*(c1 - c0))) < 0.5 * r0 * max(1, frames))

    MIN_FACE_STD = 4.0  # grey levels: a box flatter than this (a black or faded frame) holds no face
    # A carried-box fit must still look like the face the last detection found: the normalised correlation of the
    # two boxes' 24x24 grey patches. On the CREMA-D fixtures and 11 re-encodings of them (8 frames/s, detector every
    # 5th frame) a carried fit of the face read 0.54-0.96 (5th percentiles 0.57-0.90); where the face slid out of the
    # frame (60 px a frame), or at a cut, the box holds background and reads -0.05-0.15. Below this, the detector
    # runs on the frame instead (a wrong rejection costs one detection, never the face).
    MIN_LOOK = 0.4
    LOOK_PX = 24

    @classmethod
    def _look(cls, image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """The box's grey patch, LOOK_PX square, zero-mean and unit-norm (None for a box of no size or texture)."""
        h, w = image.shape[:2]
        x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
        x1, y1 = min(w, int(box[2])), min(h, int(box[3]))
        if x1 - x0 < 4 or y1 - y0 < 4:
            return None
        grey = image[y0:y1, x0:x1]
        if grey.ndim == 3:
            grey = cv2.cvtColor(np.ascontiguousarray(grey), cv2.COLOR_RGB2GRAY)
        patch = cv2.resize(grey, (cls.LOOK_PX, cls.LOOK_PX), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
        patch -= patch.mean()
        norm = float(np.linalg.norm(patch))
        return patch / norm if norm > 1e-6 else None

    def _looks_same(self, image: np.ndarray, box: np.ndarray) -> bool:
        """The box still shows what the last detection's box showed (see MIN_LOOK)."""
        if self._ref_look is None:
            return True
        look = self._look(image, box)
        return look is not None and float(look @ self._ref_look) >= self.MIN_LOOK

    @classmethod
    def _textured(cls, image: np.ndarray, box: np.ndarray) -> bool:
        """The box is not a flat area: a carried-box fit returns a face shape anywhere, even on a black frame."""
        h, w = image.shape[:2]
        x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
        x1, y1 = min(w, int(box[2])), min(h, int(box[3]))
        return x1 - x0 >= 4 and y1 - y0 >= 4 and float(image[y0:y1:2, x0:x1:2].std()) > cls.MIN_FACE_STD

    # ------------------------------------------------------------------ main loop
    def process(self, frames: np.ndarray) -> FaceTrack:
        """Track through a batch (B,H,W,3) uint8 RGB of consecutive frames; call again with the next batch."""
        frames = np.asarray(frames)
        out = FaceTrack.empty(len(frames))
        last = -1  # batch index of the last fitted frame (-1: the previous batch's last frame)
        for j in self._fit_indices(len(frames)):
            before, before_id = self._last, self._track_id
            self._step(self._prepare(frames[j]), j - last)
            if self._last is not None:
                self._put(out, j, *self._last)
            if j - last > 1 or (before is None and self._last is not None):
                self._fill(frames, out, last, j, before, self._last, left_id=before_id)
            last = j
        self._frame_no += len(frames)
        return out

    def _fit_indices(self, n: int) -> list[int]:
        """Batch indices fitted: the clip's first frame, then every ``fit_every``-th frame counted so that a batch
        of a multiple of ``fit_every`` frames ends on one; a batch's last frame always, so no gap waits on the
        next batch."""
        if n == 0:
            return []
        k = self.fit_every
        idx = list(range(-(self._frame_no + 1) % k, n, k))
        if self._frame_no == 0 and (not idx or idx[0] != 0):
            idx.insert(0, 0)
        if not idx or idx[-1] != n - 1:
            idx.append(n - 1)
        return idx

    def _put(self, out: FaceTrack, i: int, pts: np.ndarray, box: np.ndarray, score: float | None = None,
             track: int | None = None) -> None:
        out.boxes[i, :4] = box
        out.boxes[i, 4] = self._score if score is None else score
        out.landmarks[i] = pts
        out.mask[i] = True
        out.track[i] = self._track_id if track is None else track

    def _step(self, image: np.ndarray, advance: int) -> None:
        """Fit the frame ``advance`` frames after the last fitted one: in the box carried by the last fit (moved on
        at the face's last velocity) while the detector is not due and the fit looks right, else after a
        detection. Sets ``self._last``."""
        self._since_detect += advance
        if self._since_retry is not None:
            self._since_retry += advance
        if self._last is not None and self._since_detect < self.detect_every:
            c, r = self._last_frame
            predicted = (c + self._velocity * advance, r)
            box = box_in_rigid_frame(None, self._box_rel, frame=predicted)
            pts = self._landmarks(image, box)
            frame = rigid_frame(pts) if pts is not None else None
            if (frame is not None and self._fit_ok(frame, predicted, advance) and self._textured(image, box)
                    and self._looks_same(image, box)):
                self._velocity = (frame[0] - c) / advance
                self._target = box
                self._last, self._last_frame = (pts, box), frame
                return
        self._since_detect = 0
        if self._target is not None:  # search where the face should be by now
            self._target = self._target + np.tile(self._velocity * advance, 2).astype(np.float32)
        det = self._find(image)
        pts = self._landmarks(image, det.box) if det is not None else None
        if pts is None:  # nobody found, or points that are no face
            self._lost += advance
            if self._lost > self.lost_patience:
                self._target = None
            self._last = self._last_frame = None
            self._velocity = np.zeros(2)
            return
        if self._new_face:
            self._track_id += 1
        self._target, self._score, self._lost, self._since_retry = det.box.copy(), det.score, 0, None
        self._ref_look = self._look(image, det.box)
        frame = rigid_frame(pts)
        before = self._last_frame  # the same face moving fast (twice a carried fit's leeway), or a face met again
        same = before is not None and self._fit_ok(frame, before, 2 * advance)
        self._velocity = (frame[0] - before[0]) / advance if same else np.zeros(2)
        if not same:  # motion unknown: detect on the next fitted frame too, so a fast face gets a velocity
            self._since_detect = self.detect_every
        self._remember(det.box, frame)
        self._last, self._last_frame = (pts, det.box), frame

    def _fill(self, frames: np.ndarray, out: FaceTrack, a: int, b: int,
              left: tuple[np.ndarray, np.ndarray] | None, right: tuple[np.ndarray, np.ndarray] | None, *,
              left_id: int) -> None:
        """Frames strictly between fitted frames ``a`` and ``b``: interpolated when both fits show the same face;
        else, walking away from each side that has a face, detected near it and fitted one by one until the
        detector loses it (where a face comes in or goes out, a carried box alone would fit a face anywhere)."""
        if (left is not None and right is not None
                and self._fit_ok(rigid_frame(right[0]), rigid_frame(left[0]), b - a)):
            for i in range(a + 1, b):
                t = (i - a) / (b - a)
                box = (1 - t) * left[1] + t * right[1]
                if self._textured(frames[i], box):  # a black frame between two fits of a face stays empty
                    self._put(out, i, (1 - t) * left[0] + t * right[0], box)
            return
        reached = a
        if left is not None:
            reached = self._walk(frames, out, left[1], range(a + 1, b), track=left_id)
        if right is not None:  # a face found late (the detector runs on fitted frames only, the big retry
            # rationed): walked back through this batch's earlier frames too, as long as the detector sees it
            self._walk(frames, out, right[1], range(b - 1, reached if left is not None else -1, -1))

    def _walk(self, frames: np.ndarray, out: FaceTrack, box: np.ndarray, order: range, *,
              track: int | None = None) -> int:
        """Detect near ``box`` and fit, frame by frame in ``order``, until the face is lost; the last index done."""
        done = order.start - order.step
        for i in order:
            if out.mask[i]:
                break
            image = self._prepare(frames[i])
            overlaps = [(iou(d.box, box), d) for d in self._detect_near(image, box)]
            overlap, det = max(overlaps, key=lambda x: x[0], default=(0.0, None))
            pts = self._landmarks(image, det.box) if det is not None and overlap >= self.min_iou else None
            if pts is None:
                break
            self._put(out, i, pts, det.box, det.score, track=track)
            box, done = det.box, i
        return done
