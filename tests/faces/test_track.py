"""Tracking one face through real clips: coverage, landmark quality, batching, gaps, a second bigger face."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mmfer.faces.track import FaceTrack, FaceTracker, iou


def _centres(track):
    return (track.boxes[:, :2] + track.boxes[:, 2:4]) / 2


def test_faces_found_and_landmarks_in_box(clip_tracks, clip_frames):
    for frames, track in zip(clip_frames, clip_tracks):
        assert len(track) == len(frames) and track.face_ratio >= 0.9
        assert track.boxes.shape == (len(frames), 5) and track.landmarks.shape == (len(frames), 68, 2)
        assert track.boxes.dtype == np.float32 and track.landmarks.dtype == np.float32 and track.mask.dtype == bool
        for i in np.flatnonzero(track.mask):
            x0, y0, x1, y1, score = track.boxes[i]
            pad = 0.25 * (x1 - x0)
            pts = track.landmarks[i]
            assert (pts[:, 0] > x0 - pad).all() and (pts[:, 0] < x1 + pad).all()
            assert (pts[:, 1] > y0 - pad).all() and (pts[:, 1] < y1 + pad).all()
            assert np.isfinite(score)


def test_batches_continue_one_track(clip_frames, clip_tracks, dlib_backend):
    frames = clip_frames[0]
    tracker = FaceTracker(dlib_backend)
    parts = [tracker.process(frames[:5]), tracker.process(frames[5:])]
    whole = FaceTrack.concat(parts)
    np.testing.assert_array_equal(whole.mask, clip_tracks[0].mask)
    np.testing.assert_allclose(whole.landmarks, clip_tracks[0].landmarks)
    assert len(FaceTrack.concat([])) == 0


def test_detect_every_refits_between_detections(clip_frames, clip_tracks, dlib_backend):
    frames = clip_frames[1]
    tracker = FaceTracker(dlib_backend, detect_every=3)
    track = tracker.process(frames)
    assert tracker.detections_run <= len(frames) // 3 + 2
    assert track.face_ratio >= 0.9
    both = track.mask & clip_tracks[1].mask
    err = np.abs(track.landmarks[both] - clip_tracks[1].landmarks[both]).mean()
    assert err < 3.0  # carried-box fits agree with fits in freshly detected boxes


@pytest.mark.parametrize("fit_every", [1, 3])
def test_no_face_frames_stay_in_place(clip_frames, dlib_backend, fit_every):
    frames = clip_frames[0][:8].copy()
    frames[3:5] = 0  # two black frames in the middle: between two fits, or where carried fits would land
    for k in (1, 3):
        track = FaceTracker(dlib_backend, detect_every=k, fit_every=fit_every).process(frames)
        assert len(track) == 8
        assert track.mask.tolist() == [True] * 3 + [False] * 2 + [True] * 3
        assert np.isnan(track.landmarks[3:5]).all() and np.isnan(track.boxes[3:5]).all()


def _with_bigger_face(frame, box, factor=1.4):
    """The frame with a bigger copy of its own face pasted to the right of it."""
    x0, y0, x1, y1 = box[:4].astype(int)
    m = int(0.1 * (x1 - x0))
    crop = frame[max(0, y0 - m) : y1 + m, max(0, x0 - m) : x1 + m]
    big = cv2.resize(crop, None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)
    out = frame.copy()
    h, w = big.shape[:2]
    ox = frame.shape[1] - w - 2
    oy = max(0, min(frame.shape[0] - h, y0 - m - 30))
    assert ox > x1, "the pasted face must not cover the original one"
    out[oy : oy + h, ox : ox + w] = big
    return out


def test_keeps_one_person_when_bigger_face_appears(clip_frames, clip_tracks, dlib_backend):
    frames = clip_frames[0][:12].copy()
    ref = clip_tracks[0]
    for i in range(4, 9):
        frames[i] = _with_bigger_face(frames[i], ref.boxes[i])
    # the intruder is a real, larger, detectable face: a fresh tracker starting there picks it
    fresh = FaceTracker(dlib_backend).process(frames[4:5])
    assert fresh.mask[0] and iou(fresh.boxes[0], ref.boxes[4]) < 0.1
    assert fresh.boxes[0, 2] - fresh.boxes[0, 0] > 1.3 * (ref.boxes[4, 2] - ref.boxes[4, 0])
    for k, fit_every in ((1, 1), (3, 1), (3, 3)):
        track = FaceTracker(dlib_backend, detect_every=k, fit_every=fit_every).process(frames)
        assert track.mask.all()
        dist = np.linalg.norm(_centres(track) - _centres(ref)[:12], axis=1)
        assert dist.max() < 15, f"detect_every={k}, fit_every={fit_every}: jumped to the other face: {dist.round(1)}"


@pytest.mark.parametrize("fit_every", [1, 3])
def test_switches_after_target_lost_for_a_while(clip_frames, dlib_backend, fit_every):
    frames = clip_frames[0][:6]
    other = np.roll(frames, 180, axis=2)  # the same face, far to the right: "someone else"
    tracker = FaceTracker(dlib_backend, lost_patience=2, fit_every=fit_every)
    seq = np.concatenate([frames[:2], np.zeros_like(frames[:3]), other[:4]])
    track = tracker.process(seq)
    assert track.mask.tolist() == [True] * 2 + [False] * 3 + [True] * 4
    patient = FaceTracker(dlib_backend, lost_patience=20, fit_every=fit_every).process(seq)
    assert not patient.mask[5:].any()  # still waiting for the first person


def test_rejects_bad_settings(dlib_backend):
    with pytest.raises(ValueError, match="detect_every"):
        FaceTracker(dlib_backend, detect_every=0)


def test_small_face_in_big_frame_found_by_retry(clip_frames, dlib_backend):
    frame = clip_frames[0][0]
    canvas = np.zeros((1, 900, 1200, 3), np.uint8)
    canvas[0, 500:860, 700:1180] = frame  # the 104 px face becomes 28 px at detect_max_side=320
    without = FaceTracker(dlib_backend, retry_max_side=0).process(canvas)
    assert not without.mask[0]
    track = FaceTracker(dlib_backend).process(canvas)
    assert track.mask[0]
    x0, y0, x1, y1, _ = track.boxes[0]
    assert 700 < x0 < x1 < 1180 and 500 < y0 < y1 < 860 and x1 - x0 > 60


class _Recorder:
    """Wraps a backend and records the size of every image the detector is given."""

    name = "recorder"

    def __init__(self, backend):
        self.backend, self.shapes = backend, []
        self.prepare = getattr(backend, "prepare", None)

    def detect(self, image):
        self.shapes.append(image.shape[:2])
        return self.backend.detect(image)

    def landmarks(self, image, box):
        return self.backend.landmarks(image, box)


def test_tracked_face_is_detected_in_a_small_region(clip_frames, clip_tracks, dlib_backend):
    frames = clip_frames[1]
    rec = _Recorder(dlib_backend)
    track = FaceTracker(rec, detect_every=5).process(frames)
    assert track.face_ratio >= 0.9 and len(rec.shapes) <= len(frames) // 5 + 2
    h, w = frames.shape[1:3]
    first, rest = rec.shapes[0], rec.shapes[1:]
    assert max(first) == 320  # nobody followed yet: the whole downscaled frame
    assert rest and all(a * b < 0.5 * 320 * 240 for a, b in rest)  # then only a region around the face
    both = track.mask & clip_tracks[1].mask
    assert np.abs(track.landmarks[both] - clip_tracks[1].landmarks[both]).mean() < 3.0


class _NoFace:
    name = "noface"

    def __init__(self):
        self.shapes = []

    def detect(self, image):
        self.shapes.append(image.shape[:2])
        return []

    def landmarks(self, image, box):
        raise AssertionError("no face, nothing to fit")


def test_big_retry_is_rationed_without_faces():
    """Frames without a face: the cheap search runs on each, the costly full-size retry on every k-th only."""
    backend = _NoFace()
    track = FaceTracker(backend, retry_every=4).process(np.zeros((10, 900, 1200, 3), np.uint8))
    assert not track.mask.any()
    big = [s for s in backend.shapes if s == (900, 1200)]
    small = [s for s in backend.shapes if max(s) == 320]
    assert len(small) == 10 and len(big) == 3  # misses 0, 4 and 8


class _CountingFits:
    """Wraps a backend and counts landmark fits."""

    name = "counting"

    def __init__(self, backend):
        self.backend, self.fits = backend, 0
        self.prepare = getattr(backend, "prepare", None)

    def detect(self, image):
        return self.backend.detect(image)

    def landmarks(self, image, box):
        self.fits += 1
        return self.backend.landmarks(image, box)


@pytest.fixture(scope="module")
def native_frames(cremad_videos):
    """The first 40 frames of a clip at its own 30 fps: fit_every is counted in these frames."""
    from mmfer.data.video import read_frames

    return read_frames(cremad_videos[2], max_frames=40)[0]


def test_fit_every_interpolates_between_fits(native_frames, dlib_backend):
    frames = native_frames
    every = FaceTracker(dlib_backend).process(frames)
    counting = _CountingFits(dlib_backend)
    track = FaceTracker(counting, fit_every=3).process(frames)
    assert every.mask.all() and track.mask.all()
    assert counting.fits <= len(frames) // 3 + 2  # a third of the fits
    iod = np.linalg.norm(every.landmarks[:, 36] - every.landmarks[:, 45], axis=-1)
    err = np.linalg.norm(track.landmarks - every.landmarks, axis=-1).mean(-1) / iod
    assert err.mean() < 0.02 and err.max() < 0.05, err.round(3)  # within a few % of the eye distance
    # interpolated frames lie on the straight line between the fits around them
    np.testing.assert_allclose(track.landmarks[1], (track.landmarks[0] + track.landmarks[2]) / 2, atol=1e-3)
    assert not np.allclose(track.landmarks[1], track.landmarks[2])


def test_fit_every_batches_end_on_fits(native_frames, dlib_backend):
    tracker = FaceTracker(dlib_backend, fit_every=3)
    assert tracker._fit_indices(12) == [0, 2, 5, 8, 11]  # clip start, then batches of 3k end on a fit
    parts = []
    for start in range(0, 28, 7):  # batches that do not line up with the fits: each still ends on one
        part = native_frames[start:start + 7]
        fitted = tracker._fit_indices(len(part))
        assert fitted[-1] == len(part) - 1 and all(b - a <= 3 for a, b in zip(fitted, fitted[1:]))
        parts.append(tracker.process(part))
    whole = FaceTrack.concat(parts)
    assert len(whole) == 28 and whole.mask.all()
    assert len(tracker.process(native_frames[:0])) == 0 and len(FaceTracker(dlib_backend, fit_every=3).process(
        native_frames[:0])) == 0
    with pytest.raises(ValueError, match="fit_every"):
        FaceTracker(dlib_backend, fit_every=0)


def test_fit_every_fits_frames_one_by_one_where_the_face_appears(native_frames, dlib_backend):
    frames = native_frames[:12].copy()
    frames[:4] = 0  # the face comes in at frame 4, between two fitted frames (2 and 5)
    counting = _CountingFits(dlib_backend)
    track = FaceTracker(counting, fit_every=3).process(frames)
    assert track.mask.tolist() == [False] * 4 + [True] * 8
    ref = FaceTracker(dlib_backend).process(frames)
    np.testing.assert_allclose(track.landmarks[4], ref.landmarks[4], atol=3.0)  # its own fit, not a guess


def _panned(frames, px_per_frame):
    """The clip moving right across a wider canvas by ``px_per_frame`` each frame (a camera pan)."""
    n, h, w, _ = frames.shape
    out = np.zeros((n, h, w + int(px_per_frame * n) + 1, 3), np.uint8)
    for i in range(n):
        x = int(round(px_per_frame * i))
        out[i, :, x:x + w] = frames[i]
    return out


def test_fit_every_follows_a_moving_face(native_frames, dlib_backend):
    moving = _panned(native_frames, 8)  # about 2.4 face widths per second at 30 fps
    runs = {}
    for k in (1, 3):
        rec = _Recorder(dlib_backend)
        track = FaceTracker(rec, detect_every=10, fit_every=k).process(moving)
        runs[k] = (track, len(rec.shapes))
    (every, det_every), (sparse, det_sparse) = runs[1], runs[3]
    assert every.mask.all() and sparse.mask.all()
    assert det_sparse <= det_every + 2  # the carried box keeps up: no detection on every fitted frame
    iod = np.linalg.norm(every.landmarks[:, 36] - every.landmarks[:, 45], axis=-1)
    err = np.linalg.norm(sparse.landmarks - every.landmarks, axis=-1).mean(-1) / iod
    assert err.mean() < 0.03, err.round(3)


def test_small_face_coming_in_late_is_found_soon(clip_frames, dlib_backend):
    face = clip_frames[0][:14]
    canvas = np.zeros((20, 900, 1200, 3), np.uint8)
    canvas[6:, 500:860, 700:1180] = face  # from frame 6; 28 px wide at detect_max_side 320: only the retry sees it
    track = FaceTracker(dlib_backend, detect_every=10, fit_every=3).process(canvas)
    assert not track.mask[:6].any()
    assert track.mask[6:].mean() >= 0.9, track.mask.astype(int)  # found within a few frames, then back-filled


def test_a_small_face_in_a_small_frame_is_found_by_the_enlarged_retry(clip_frames, dlib_backend, monkeypatch):
    """A face under the HOG window (about 55 px) in a 320x240 frame: the retry enlarges the frame and finds it;
    without the enlargement it is missed."""
    import cv2

    frame = clip_frames[0][5]
    small = cv2.resize(frame, (192, 144), interpolation=cv2.INTER_AREA)
    canvas = np.full((240, 320, 3), 90, np.uint8)
    canvas[40:184, 60:252] = small
    assert FaceTracker(dlib_backend).process(canvas[None]).mask[0]
    monkeypatch.setattr(FaceTracker, "RETRY_UPSCALE", 1.0)
    assert not FaceTracker(dlib_backend).process(canvas[None]).mask[0]


class _QuickAndFull(_NoFace):
    """A backend with a cheap every-frame search and a costly full detector, counting the calls of each."""

    def __init__(self):
        super().__init__()
        self.full = 0

    def detect_quick(self, image):
        return super().detect(image)

    def detect(self, image):
        self.full += 1
        return []


def test_a_costly_detector_runs_only_on_rationed_retries():
    """detect_quick searches every frame; the full detect (dlib_mtcnn: MTCNN) runs on the retries only."""
    backend = _QuickAndFull()
    FaceTracker(backend, retry_every=4).process(np.zeros((10, 240, 320, 3), np.uint8))
    assert backend.full == 3  # misses 0, 4 and 8
    assert len(backend.shapes) == 10 + 3  # the quick pass on each frame, and the enlarged retries


@pytest.mark.parametrize("fit_every", [1, 3])
def test_a_cut_away_from_the_face_ends_the_face_frames(native_frames, dlib_backend, fit_every):
    """After a cut to a shot with no face, the box carried from the last fit holds background, which a landmark
    fit shapes into a face anywhere: it must not pass for the face until the next detection (AFEW clips cut)."""
    rng = np.random.default_rng(0)
    scene = cv2.GaussianBlur(rng.integers(0, 255, native_frames.shape[1:], dtype=np.uint8), (9, 9), 3)
    clip = np.concatenate([native_frames[:20], np.repeat(scene[None], 20, axis=0)])
    track = FaceTracker(dlib_backend, detect_every=10, fit_every=fit_every).process(clip)
    assert track.mask[:19].all() and not track.mask[20:].any(), np.flatnonzero(track.mask)


class _Garbage:
    """A backend of a user's own that answers wrongly: ``box`` and ``points`` say how."""

    name = "garbage"

    def __init__(self, box="ok", points="ok", real=None):
        self.box, self.points, self.real = box, points, real

    def detect(self, image):
        h, w = image.shape[:2]
        from mmfer.faces.base import Detection

        boxes = {"ok": [w * 0.3, h * 0.2, w * 0.7, h * 0.8], "outside": [w + 50, h + 50, w + 150, h + 150],
                 "huge": [-5000, -5000, 5000, 5000], "nan": [np.nan, 0, 10, 10], "flipped": [w * 0.7, 10, w * 0.3, 90]}
        if self.box == "raise":
            raise ValueError("model not loaded")
        if self.box == "tuple":
            return (0, 0, 10, 10)
        return [Detection(np.array(boxes[self.box], np.float32), float("nan"))]

    def landmarks(self, image, box):
        if self.points == "ok":
            return self.real.landmarks(image, box)
        x0, y0, x1, y1 = box[:4]
        pts = np.stack([np.linspace(x0, x1, 68), np.linspace(y0, y1, 68)], 1)
        return {"nan": np.full((68, 2), np.nan), "one_point": np.full((68, 2), 50.0), "far": pts + 10_000,
                "shape": pts[:5], "ragged": [[1, 2], [3]]}[self.points]


@pytest.mark.parametrize("box, points", [("outside", "ok"), ("huge", "ok"), ("nan", "ok"), ("flipped", "ok"),
                                         ("ok", "nan"), ("ok", "one_point"), ("ok", "far")])
def test_answers_of_a_backend_that_are_no_face_leave_the_frame_without_one(box, points, clip_frames, dlib_backend,
                                                                           caplog):
    """A user's detector found boxes outside the frame or points 10,000 px away: each was kept as a face (black
    crops, face_ratio 1.0, a confident wrong prediction). They are no face now, said once per backend."""
    import logging

    import mmfer.faces.base as base

    base._SAID.clear()
    with caplog.at_level(logging.WARNING, logger="mmfer.faces.base"):
        track = FaceTracker(_Garbage(box, points, real=dlib_backend)).process(clip_frames[0][:6])
    assert not track.mask.any() and np.isnan(track.landmarks).all()
    if points != "nan":  # a failed fit (NaN) is the backend's way of saying no face: not warned of
        said = [r.getMessage() for r in caplog.records]
        assert len(said) == 1 and "face backend 'garbage' (test_track._Garbage)" in said[0], said


def test_a_plausible_answer_with_a_nan_score_is_kept(clip_frames, dlib_backend):
    track = FaceTracker(_Garbage("ok", "ok", real=dlib_backend)).process(clip_frames[0][:4])
    assert track.mask.all() and (track.boxes[:, 4] == 0).all()  # a score that is not finite counts as 0


@pytest.mark.parametrize("box, points, said", [
    ("raise", "ok", r"face backend 'garbage' \(test_track._Garbage\).detect raised ValueError: model not loaded"),
    ("tuple", "ok", r"\.detect returned a tuple holding int; expected mmfer.faces.base.Detection"),
    ("ok", "shape", r"\.landmarks returned an array of shape \(5, 2\); expected \(68, 2\)"),
    ("ok", "ragged", r"\.landmarks returned list, not an array of 68 points"),
])
def test_a_backend_that_raises_or_answers_in_another_form_is_said_by_name(box, points, said, clip_frames,
                                                                          dlib_backend):
    from mmfer.faces.base import FaceBackendError

    with pytest.raises(FaceBackendError, match=said):
        FaceTracker(_Garbage(box, points, real=dlib_backend)).process(clip_frames[0][:2])


def test_a_clip_whose_backend_raises_fails_naming_the_backend_not_the_decoder(cremad_videos, monkeypatch):
    """The detector raising on its 41st call left the clip ok with part of its frames and 'decoding stopped'."""
    import mmfer.data.clip as clip_mod
    from mmfer.data.cache import PreprocessSettings
    from mmfer.data.index import ClipEntry

    calls = []

    class Late(_Garbage):
        def detect(self, image):
            calls.append(1)
            if len(calls) > 3:
                raise RuntimeError("the detector broke")
            return []

    monkeypatch.setattr(clip_mod, "get_backend", lambda name: Late())
    arrays, _, rec = clip_mod.process_clip(ClipEntry("x", "Test", None, cremad_videos[0]),
                                           PreprocessSettings(face_backend="none", max_frames=40), overlap_io=False)
    assert arrays is None and rec.status == "failed"
    assert str(cremad_videos[0]) in rec.reason and "face backend 'garbage'" in rec.reason
    assert "detect raised RuntimeError: the detector broke" in rec.reason
    assert "cannot decode" not in rec.reason and not rec.warnings
