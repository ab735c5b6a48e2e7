"""Face crops as video frames yield them: one function from an RGB frame to the crop a face model sees.

Why: a face model must learn from the crops it is served. ``mmfer predict`` makes them from video frames
(detector, 68 landmarks, similarity alignment, the branch's framing); this module is that path for one
frame, and the face-image trainer's crops (``mmfer.data.video_faces``) and predict's single images both call
it, so training and serving cannot drift apart.

A face image with no context (a FER2013-style tight crop) is first *placed* in a frame, as a video shows a
face; where the detector misses it there, the landmarks are fitted in the box dlib's detector would give for
it (``tight_crop_detector_box``), which is what the tracker does between detections anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmfer.faces.align import FER2013_RIGID, align_frames, framing_box

# Size a tight face crop is shown at when a single image goes through the video path (predict's images):
# the middle of the 56-256 px range face models are trained on, and above the HOG detector's 80 px.
IMAGE_FACE_PX = 144


def tight_crop_detector_box(face_box: np.ndarray) -> np.ndarray:
    """The box (x0, y0, x1, y1) dlib's HOG detector would give for a FER2013-framed face filling ``face_box``.

    It follows from two measured relations, so no new constant: where FER2013 places the eyes-and-nose points
    in its images (FER2013_RIGID) and where the detector's box sits relative to them (DETECTOR_BOX_REL).
    """
    from mmfer.faces.dlib import DETECTOR_BOX_REL

    x0, y0, x1, y1 = (float(v) for v in np.asarray(face_box)[:4])
    side = ((x1 - x0) + (y1 - y0)) / 2
    r = FER2013_RIGID[2] * side
    centre = np.array([x0 + FER2013_RIGID[0] * (x1 - x0), y0 + FER2013_RIGID[1] * (y1 - y0)])
    centre = centre + DETECTOR_BOX_REL[:2] * r
    wh = DETECTOR_BOX_REL[2:] * r
    return np.concatenate([centre - wh / 2, centre + wh / 2]).astype(np.float32)


@dataclass
class FrameCrop:
    """One frame's face crop (S, S, 3) uint8 in the framing asked for, and how the face was found."""

    crop: np.ndarray
    landmarks: np.ndarray  # (68, 2) frame pixels
    detected: bool  # False: the detector missed and the landmarks were fitted in the hint box


def frame_faces(aligned: np.ndarray, framing: str | None) -> np.ndarray:
    """Aligned crops (..., S, S, 3) cut to a branch's framing: ``fer2013``, the square of the aligned crop that frames
    faces like FER2013 (``framing_box``); None or ``aligned``, the whole crop."""
    if framing == "fer2013":
        x0, y0, x1, y1 = framing_box(aligned.shape[-2])
        return aligned[..., y0:y1, x0:x1, :]
    if framing in (None, "aligned"):
        return aligned
    raise ValueError(f"face framing {framing!r}; expected fer2013 or aligned")


def frame_crop(frame: np.ndarray, backend, *, crop_size: int, framing: str | None, detect_max_side: int,
               hint_box: np.ndarray | None = None) -> FrameCrop | None:
    """The crop predict makes of the (largest) face in one RGB frame, or None where no face is found.

    The same calls as a video's frames take (``FaceTracker`` with the decode settings, ``align_frames``, the
    branch framing). ``hint_box``: where a known face is (a detector-style box, see
    ``tight_crop_detector_box``); used only when the detector misses.
    """
    from mmfer.faces.track import FaceTracker

    frame = np.ascontiguousarray(frame)
    track = FaceTracker(backend, detect_max_side=detect_max_side, detect_every=1).process(frame[None])
    detected = bool(track.mask[0])
    if detected:
        pts = track.landmarks[0]
    elif hint_box is not None:
        from mmfer.faces.base import landmarks_of

        prepare = getattr(backend, "prepare", None) or (lambda image: image)
        pts = landmarks_of(backend, prepare(frame), hint_box)
        if pts is None:
            return None
    else:
        return None
    crop = frame_faces(align_frames(frame[None], pts[None], np.ones(1, bool), crop_size=crop_size)[0], framing)
    return FrameCrop(crop=crop, landmarks=pts, detected=detected)


def place_face(face: np.ndarray, *, size: int, frame_hw: tuple[int, int], at: tuple[int, int],
               background: str = "replicate", fill: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """A frame (H, W, 3) uint8 showing ``face`` (RGB or grey) resized to ``size`` px with its top-left at ``at``,
    and the face's box (x0, y0, x1, y1). ``background``: ``replicate`` or ``reflect`` continue the face's
    borders (a head has context around its face), ``constant`` fills with grey ``fill``."""
    import cv2

    face = np.asarray(face)
    if face.ndim == 2:
        face = np.repeat(face[..., None], 3, axis=2)
    h, w = frame_hw
    big = cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC if size > face.shape[0] else cv2.INTER_AREA)
    x, y = at
    border = {"replicate": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT_101,
              "constant": cv2.BORDER_CONSTANT}[background]
    frame = cv2.copyMakeBorder(big, max(y, 0), max(h - y - size, 0), max(x, 0), max(w - x - size, 0), border,
                               value=(fill, fill, fill))
    # a face partly outside the frame: cut what lies outside
    frame = frame[max(-y, 0): max(-y, 0) + h, max(-x, 0): max(-x, 0) + w]
    return np.ascontiguousarray(frame), np.array([x, y, x + size, y + size], np.float32)


def image_crop(face: np.ndarray, backend, *, crop_size: int, framing: str | None, detect_max_side: int) -> FrameCrop:
    """A tight face image (FER2013-like) through the video path: shown at IMAGE_FACE_PX in a frame of its own,
    then ``frame_crop`` with the detector box it implies as the hint (so a face is always returned)."""
    pad = IMAGE_FACE_PX // 3
    side = IMAGE_FACE_PX + 2 * pad
    frame, box = place_face(face, size=IMAGE_FACE_PX, frame_hw=(side, side), at=(pad, pad))
    out = frame_crop(frame, backend, crop_size=crop_size, framing=framing, detect_max_side=detect_max_side,
                     hint_box=tight_crop_detector_box(box))
    assert out is not None  # a hint box always gives landmarks
    return out
