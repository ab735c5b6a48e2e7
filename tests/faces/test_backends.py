"""Backends by name, the dlib detector/predictor on a real frame, the none backend, insightface errors."""

from __future__ import annotations

import numpy as np
import pytest

from mmfer.errors import MmferError
from mmfer.faces.align import EYE_LEFT, EYE_RIGHT, MOUTH, NOSE
from mmfer.faces.backends import get_backend
from mmfer.faces.base import Detection, FaceBackend


def _enlarge(box, f=0.25):
    x0, y0, x1, y1 = box[:4]
    dx, dy = (x1 - x0) * f, (y1 - y0) * f
    return np.array([x0 - dx, y0 - dy, x1 + dx, y1 + dy])


def _inside(pts, box):
    return bool(((pts >= box[:2]) & (pts <= box[2:4])).all())


def _plausible_face(pts):
    """Anatomy in image coordinates: eyes above nose tip above mouth, left eye left of right eye."""
    le, re = pts[EYE_LEFT].mean(0), pts[EYE_RIGHT].mean(0)
    return le[0] < re[0] and max(le[1], re[1]) < pts[NOSE][-5:].mean(0)[1] < pts[MOUTH].mean(0)[1]


def test_get_backend_names_and_cache(dlib_backend):
    assert get_backend("dlib") is dlib_backend and get_backend("DLIB") is dlib_backend
    assert isinstance(dlib_backend, FaceBackend) and dlib_backend.name == "dlib"
    with pytest.raises(MmferError, match=r"unknown face backend 'retinaface'.*dlib, mtcnn, dlib_mtcnn, insightface, none"):
        get_backend("retinaface")


def test_a_shared_backend_is_called_by_one_thread_at_a_time(monkeypatch):
    """Two threads predicting at once called dlib's detector together: other faces, silently, or a crash ("double
    free or corruption"); a helper's service found it. The shared backend now lets one call in at a time."""
    import threading
    import time

    import mmfer.faces.backends as B

    class Slow:
        inside = most = built = 0

        def __init__(self):
            Slow.built += 1
            time.sleep(0.05)  # a slow build: four threads asking at once still get one backend

        def detect(self, image):
            Slow.inside += 1
            Slow.most = max(Slow.most, Slow.inside)
            time.sleep(0.02)
            Slow.inside -= 1
            return []

    monkeypatch.setattr(B, "_backend_class", lambda name: ("slow", Slow))
    monkeypatch.setattr(B, "_CACHE", {})
    backends = []
    threads = [threading.Thread(target=lambda: [backends.append(B.get_backend("slow"))] + [
        backends[-1].detect(None) for _ in range(5)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(b) for b in backends}) == 1 and Slow.built == 1  # built once, for every thread
    assert Slow.most == 1
    backends[0].threshold = 0.5  # a setting given to it reaches the backend itself
    assert backends[0]._backend.threshold == 0.5


def test_dlib_detects_and_fits(dlib_backend, clip_frames):
    frame = clip_frames[0][0]
    dets = dlib_backend.detect(frame)
    assert len(dets) == 1 and isinstance(dets[0], Detection)
    box = dets[0].box
    assert box.dtype == np.float32 and 60 < box[2] - box[0] < 200 and dets[0].score > 0
    pts = dlib_backend.landmarks(frame, box)
    assert pts.shape == (68, 2) and pts.dtype == np.float32
    assert _inside(pts, _enlarge(box)) and _plausible_face(pts)
    assert dlib_backend.detect(np.zeros((120, 160, 3), np.uint8)) == []
    with pytest.raises(ValueError, match="RGB uint8"):
        dlib_backend.detect(frame.astype(np.float32))


@pytest.mark.parametrize("margin", [0.05, 0.5])
def test_none_backend_on_face_crop(dlib_backend, clip_frames, margin):
    frame = clip_frames[0][0]
    box = dlib_backend.detect(frame)[0].box
    ref = dlib_backend.landmarks(frame, box)
    x0, y0, x1, y1 = _enlarge(box, margin).astype(int)
    x0, y0 = max(x0, 0), max(y0, 0)
    crop = np.ascontiguousarray(frame[y0:y1, x0:x1])
    backend = get_backend("none")
    (det,) = backend.detect(crop)
    np.testing.assert_array_equal(det.box, [0, 0, crop.shape[1] - 1, crop.shape[0] - 1])
    pts = backend.landmarks(crop, det.box)
    assert pts.shape == (68, 2) and _plausible_face(pts)
    # a loose crop still gives the points a detector box would (dlib's predictor wants tight boxes)
    assert np.abs(pts + [x0, y0] - ref).mean() < 1.5


def test_check_backend_without_loading(monkeypatch, tmp_path):
    from mmfer.faces import backends as base
    from mmfer.faces import dlib as dlib_backend_module
    from mmfer.faces.none import NoDetectBackend

    base.check_backend("dlib")  # installed: no error
    with pytest.raises(MmferError, match="unknown face backend"):
        base.check_backend("retinaface")
    missing = tmp_path / "shape_predictor_68_face_landmarks.dat"
    monkeypatch.setattr(dlib_backend_module, "predictor_path", lambda: str(missing))
    for cls in (dlib_backend_module.DlibBackend, NoDetectBackend):
        with pytest.raises(MmferError, match=rf"{missing}: the dlib 68-point predictor file is missing"):
            cls.check()


def test_insightface_missing_models_message(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("MMFER_INSIGHTFACE_ROOT", str(missing))
    with pytest.raises(MmferError, match=rf"{missing} does not exist.*det_10g\.onnx and 1k3d68\.onnx.*MMFER_INSIGHTFACE_ROOT"):
        get_backend("insightface")
    (tmp_path / "det_10g.onnx").write_bytes(b"")
    monkeypatch.setenv("MMFER_INSIGHTFACE_ROOT", str(tmp_path))
    with pytest.raises(MmferError, match=rf"{tmp_path} has no the 68-point model 1k3d68\.onnx") as err:
        get_backend("insightface")
    assert "det_" not in str(err.value).split("has no")[1].split(";")[0]


def test_unknown_backend_lists_all():
    from mmfer.faces.backends import BACKENDS

    with pytest.raises(MmferError, match="unknown face backend 'hog'") as err:
        get_backend("hog")
    assert set(BACKENDS) >= {"dlib", "mtcnn", "dlib_mtcnn", "insightface", "none"}
    assert all(name in str(err.value) for name in BACKENDS)



def test_register_backend_adds_one_of_your_own(monkeypatch):
    """A detector of the user's own is named like mmfer's: built once, listed in the unknown-name error, its
    ``check`` used by check_backend; a taken name is refused unless replaced."""
    import mmfer.faces.backends as B

    monkeypatch.setattr(B, "BACKENDS", dict(B.BACKENDS))
    monkeypatch.setattr(B, "_CACHE", {})

    class Blind:
        name = "blind"
        checked = 0

        @classmethod
        def check(cls):
            cls.checked += 1

        def detect(self, image):
            return []

        def landmarks(self, image, box):
            raise AssertionError("no face, no landmarks")

    B.register_backend("blind", Blind)
    backend = B.get_backend("Blind")
    assert backend is B.get_backend("blind") and backend.detect(np.zeros((8, 8, 3), np.uint8)) == []
    assert isinstance(backend, FaceBackend)
    B._CACHE.clear()
    B.check_backend("blind")
    assert Blind.checked == 1 and "blind" not in B._CACHE  # checked without building
    assert B.registered_backend("BLIND") == ("blind", Blind) and B.registered_backend("dlib") is None
    with pytest.raises(MmferError, match="unknown face backend 'hog'.*none, blind.*register_backend"):
        B.get_backend("hog")
    with pytest.raises(MmferError, match=r"'dlib' is already a face backend \(mmfer.faces.dlib.DlibBackend\)"):
        B.register_backend("dlib", Blind)
    for bad in ("", "My Detector", "Blind2", 3):
        with pytest.raises(MmferError, match="lower-case word"):
            B.register_backend(bad, Blind)
    with pytest.raises(MmferError, match="must be a class"):
        B.register_backend("other", object())
    with pytest.raises(MmferError, match="got an instance of Blind: pass the class itself"):
        B.register_backend("other", Blind())
    Again = type("Blind", (Blind,), {"__qualname__": Blind.__qualname__})  # its module reloaded, a cell run again
    B.register_backend("blind", Again)
    assert B.BACKENDS["blind"] is Again

    class Broken:
        def __init__(self):
            raise OSError("weights.onnx: no such file")

    B.register_backend("broken", Broken)
    with pytest.raises(MmferError, match=r"face backend 'broken' \(test_backends\..*Broken\) could not be built: "
                                         r"OSError: weights.onnx: no such file"):
        B.get_backend("broken")
    from mmfer.data.preprocess import worker_start_method

    assert worker_start_method("dlib") in ("fork", "spawn")  # (spawn where torch is loaded already)
    B.register_backend("dlib", Blind, replace=True)
    assert B.get_backend("dlib")._backend.__class__ is Blind
    assert worker_start_method("dlib") == "spawn"  # the user's class is not known to survive a fork
    assert B.backend_name(" Blind ") == "blind"
    # spawned workers import the class by its module: one made inside a function cannot be, said before any clip
    with pytest.raises(MmferError, match=r"cannot be loaded by worker processes.*--workers 1"):
        B.check_spawnable("blind")


def test_a_backend_name_is_one_spelling_and_a_class_of_an_interactive_session_is_refused_for_workers(monkeypatch):
    import sys
    import types

    import mmfer.faces.backends as B
    from mmfer.data.cache import PreprocessSettings

    assert PreprocessSettings(face_backend=" DLIB").face_backend == "dlib"
    assert PreprocessSettings(face_backend="DLIB").hash == PreprocessSettings(face_backend="dlib").hash
    monkeypatch.setattr(B, "BACKENDS", dict(B.BACKENDS))
    Typed = type("Typed", (), {"__module__": "__main__", "detect": lambda self, image: []})
    B.register_backend("typed", Typed)
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))  # python -c, a notebook: no file
    with pytest.raises(MmferError, match=r"'typed' \(__main__.Typed\) cannot be loaded by worker processes"):
        B.check_spawnable("typed")
    script = types.ModuleType("__main__")
    script.__file__ = "/tmp/my_script.py"  # a script: spawned workers run it again as __mp_main__
    monkeypatch.setitem(sys.modules, "__main__", script)
    B.check_spawnable("typed")
    B.check_spawnable("dlib")  # mmfer's own: always

@pytest.fixture(scope="module")
def mtcnn_backend():
    return get_backend("mtcnn")


def test_mtcnn_detects_and_fits_near_dlib(mtcnn_backend, dlib_backend, clip_frames):
    from mmfer.faces.align import eye_centres
    from mmfer.faces.base import to_grey
    from mmfer.faces.mtcnn import hog_box_from_mtcnn
    from mmfer.faces.track import iou

    assert isinstance(mtcnn_backend, FaceBackend) and mtcnn_backend.name == "mtcnn"
    for frame in clip_frames[0][::11]:
        (det,) = mtcnn_backend.detect(frame)
        assert isinstance(det, Detection) and det.box.dtype == np.float32 and det.score > 0.9
        hog = dlib_backend.detect(frame)[0].box
        assert iou(det.box, hog) > 0.5 and iou(hog_box_from_mtcnn(det.box), hog) > 0.75  # the calibrated map
        ref = dlib_backend.landmarks(frame, hog)
        pts = mtcnn_backend.landmarks(frame, det.box)
        assert pts.shape == (68, 2) and pts.dtype == np.float32 and _plausible_face(pts)
        iod = float(np.linalg.norm(np.diff(eye_centres(ref), axis=0)))
        assert np.linalg.norm(pts - ref, axis=1).mean() < 0.05 * iod  # dlib's points, as the alignment expects
    assert len(mtcnn_backend.detect(to_grey(frame))) == 1  # grey frames work too


def test_mtcnn_no_face_is_no_detection(mtcnn_backend):
    rng = np.random.default_rng(0)
    assert mtcnn_backend.detect(np.zeros((120, 160, 3), np.uint8)) == []
    assert mtcnn_backend.detect(np.full((240, 320, 3), 128, np.uint8)) == []
    assert mtcnn_backend.detect(np.zeros((8, 8, 3), np.uint8)) == []  # smaller than one 12-px window
    noise = rng.integers(0, 256, (60, 80), dtype=np.uint8)
    assert mtcnn_backend.detect(np.repeat(noise[..., None], 3, 2)) == []


def test_mtcnn_small_face_through_tracker(mtcnn_backend, dlib_backend, clip_frames):
    """A face of about 45 px in a 640x480 frame: too small for HOG (its window is 80 px), found by MTCNN."""
    import cv2

    from mmfer.faces.track import FaceTracker

    frame = clip_frames[0][0]
    small = cv2.resize(frame, (frame.shape[1] * 2 // 5, frame.shape[0] * 2 // 5), interpolation=cv2.INTER_AREA)
    big = np.full((480, 640, 3), 100, np.uint8)
    big[200:200 + small.shape[0], 300:300 + small.shape[1]] = small
    assert dlib_backend.detect(dlib_backend.prepare(big)) == []
    for backend in (mtcnn_backend, get_backend("dlib_mtcnn")):
        track = FaceTracker(backend, detect_max_side=320, detect_every=1).process(big[None])
        assert track.mask[0] and _plausible_face(track.landmarks[0])
        assert 300 < track.boxes[0, 0] < track.boxes[0, 2] < 300 + small.shape[1]


@pytest.mark.parametrize("shrink, found", [(3, True), (5, False)])
def test_tracker_ignores_faces_narrower_than_min_face_px(clip_frames, shrink, found):
    """A real face about 20 px wide (a fifth of the clip's size) is found by dlib_mtcnn but not taken: boxes that
    narrow are mostly false faces in textures (FaceTracker.MIN_FACE_PX); one about 34 px wide is taken."""
    import cv2

    from mmfer.faces.track import FaceTracker

    frame = clip_frames[0][0]
    small = cv2.resize(frame, (frame.shape[1] // shrink, frame.shape[0] // shrink), interpolation=cv2.INTER_AREA)
    big = np.full((240, 320, 3), 100, np.uint8)
    big[100:100 + small.shape[0], 150:150 + small.shape[1]] = small
    backend = get_backend("dlib_mtcnn")
    anything = FaceTracker(backend, detect_max_side=320, detect_every=1, min_face_px=0).process(big[None])
    assert anything.mask[0] and 150 < anything.boxes[0, 0] < anything.boxes[0, 2] < 150 + small.shape[1]
    width = float(anything.boxes[0, 2] - anything.boxes[0, 0])
    assert (width >= FaceTracker.MIN_FACE_PX) == found
    default = FaceTracker(backend, detect_max_side=320, detect_every=1).process(big[None])
    assert bool(default.mask[0]) == found


def test_dlib_mtcnn_is_hog_where_hog_finds(dlib_backend, clip_frames):
    backend = get_backend("dlib_mtcnn")
    assert isinstance(backend, FaceBackend) and backend.name == "dlib_mtcnn"
    grey = backend.prepare(clip_frames[0][0])
    (det,) = backend.detect(grey)
    (hog,) = dlib_backend.detect(grey)
    np.testing.assert_array_equal(det.box, hog.box)
    np.testing.assert_array_equal(backend.landmarks(grey, det.box), dlib_backend.landmarks(grey, hog.box))
    assert backend.detect(np.full((120, 160), 128, np.uint8)) == []


def test_mtcnn_missing_or_broken_weights(monkeypatch, tmp_path):
    from mmfer.faces import mtcnn

    monkeypatch.setattr(mtcnn, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(MmferError, match=rf"{tmp_path / 'pnet.pt'}: the MTCNN weight file is missing; reinstall mmfer"):
        mtcnn.MtcnnBackend.check()
    for name in mtcnn.NETS:
        (tmp_path / f"{name}.pt").write_bytes(b"not a state dict")
    mtcnn.MtcnnBackend.check()  # present: check does not read them
    with pytest.raises(MmferError, match=rf"{tmp_path / 'pnet.pt'}: cannot load the MTCNN weights"):
        mtcnn.load_nets.__wrapped__()


def _turn(image: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """The image turned ``angle`` degrees about its centre, and the 2x3 map of its pixels."""
    import cv2

    h, w = image.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    return cv2.warpAffine(image, turn, (w, h), borderMode=cv2.BORDER_REPLICATE), turn


def test_upright_fit_of_a_rolled_face(dlib_backend, clip_frames):
    """A face rolled 35 degrees is fitted as well as upright: the points are the upright fit, turned."""
    from mmfer.faces.align import eye_centres
    from mmfer.faces.dlib import UPRIGHT_ABOVE_DEG, eye_roll_deg, fit_landmarks, load_predictor

    grey = dlib_backend.prepare(clip_frames[0][0])
    (det,) = dlib_backend.detect(grey)
    ref = dlib_backend.landmarks(grey, det.box)
    assert abs(eye_roll_deg(ref)) < UPRIGHT_ABOVE_DEG  # the fixture face is upright: one fit, as before
    np.testing.assert_array_equal(ref, fit_landmarks(load_predictor(), grey, det.box, upright=False))
    iod = float(np.linalg.norm(np.diff(eye_centres(ref), axis=0)))
    for angle in (35.0, -35.0):
        turned, m = _turn(grey, angle)
        truth = ref @ m[:, :2].T + m[:, 2]
        centre, half = truth[27:36].mean(0), (det.box[2:4] - det.box[:2]) / 2  # an upright box on the turned face
        box = np.concatenate([centre - half, centre + half])
        plain = fit_landmarks(load_predictor(), turned, box, upright=False)
        pts = dlib_backend.landmarks(turned, box)
        assert abs(eye_roll_deg(pts) + angle) < 5  # the tilt is read (cv2 turns counter-clockwise)
        err, plain_err = (np.linalg.norm(p - truth, axis=1).mean() / iod for p in (pts, plain))
        assert err < 0.05 and err < plain_err


def test_dlib_mtcnn_finds_a_rolled_face(clip_frames):
    """A face turned 55 degrees, past both detectors upright, is found by MTCNN on the image turned back."""
    backend = get_backend("dlib_mtcnn")
    mtcnn = backend._mtcnn
    grey = backend.prepare(clip_frames[0][0])
    (upright,) = backend.detect(grey)
    turned, m = _turn(grey, 55.0)
    assert backend.detect_quick(turned) == [] and mtcnn.detect(turned) == []
    (det,) = backend.detect(turned)
    centre = ((upright.box[:2] + upright.box[2:]) / 2) @ m[:, :2].T + m[:, 2]
    size = upright.box[2:4] - upright.box[:2]
    assert np.abs((det.box[:2] + det.box[2:]) / 2 - centre).max() < 0.15 * size.mean()
    assert np.allclose(det.box[2:4] - det.box[:2], size, rtol=0.25)
    assert backend.detect(np.full((120, 160), 128, np.uint8)) == []


def test_points_disagreement_reads_the_five_points():
    from mmfer.faces.mtcnn import five_points, points_disagreement

    pts68 = np.random.default_rng(0).uniform(0, 100, (68, 2)).astype(np.float32)
    pts68[36:42], pts68[42:48] = [30.0, 40.0], [70.0, 40.0]  # eye centres 40 px apart
    five = five_points(pts68)
    assert np.allclose(five[[0, 1]], [[30, 40], [70, 40]]) and np.allclose(five[2:], pts68[[30, 48, 54]])
    assert points_disagreement(pts68, five) == pytest.approx(0.0, abs=1e-6)
    assert points_disagreement(pts68, five + [8.0, 0.0]) == pytest.approx(0.2)  # 8 px in a 40-px eye distance


def test_dlib_mtcnn_last_resort_keeps_only_confirmed_boxes(clip_frames, monkeypatch):
    """The lower-threshold pass keeps its best box where dlib's points fitted in it agree with MTCNN's five, and
    drops it where they do not (a face-like texture); it runs only after every other pass found nothing."""
    from mmfer.faces import mtcnn as m

    backend = get_backend("dlib_mtcnn")
    grey = backend.prepare(clip_frames[0][0])
    boxes, pts = m.detect_faces(grey, backend._mtcnn._nets, thresholds=m.LAST_RESORT_THRESHOLDS)
    assert len(boxes) == 1
    (kept,) = backend._mtcnn.detect_confirmed(grey)
    assert np.allclose(kept.box, boxes[0, :4])
    eyes = float(np.linalg.norm(pts[0, 1] - pts[0, 0]))
    shifted = pts + [0.3 * eyes, 0.0]  # MTCNN's points a third of the eye distance off dlib's fit
    monkeypatch.setattr(m, "detect_faces", lambda *a, **k: (boxes, shifted))
    assert backend._mtcnn.detect_confirmed(grey) == []
    monkeypatch.setattr(m, "detect_faces", lambda *a, **k: (boxes, pts))
    calls = []
    monkeypatch.setattr(backend._hog, "detect", lambda image: [])
    monkeypatch.setattr(backend._mtcnn, "detect", lambda image: calls.append("upright") or [])
    monkeypatch.setattr(backend._mtcnn, "detect_turned", lambda image: calls.append("turned") or [])
    (det,) = backend.detect(grey)
    assert calls == ["upright", "turned"]
    assert np.allclose(det.box, m.hog_box_from_mtcnn(boxes[0, :4]))  # in HOG geometry, like every box it gives


@pytest.mark.parametrize("width, kept", [(20.0, False), (23.9, False), (24.0, True), (40.0, True)])
def test_last_resort_drops_boxes_narrower_than_its_min_width(clip_frames, monkeypatch, width, kept):
    """Agreeing points or not, a box narrower than LAST_RESORT_MIN_WIDTH in the image searched is no face: the
    false faces of gravel and grass are that narrow, and scaling the box back to a large frame must not pass them."""
    from mmfer.faces import mtcnn as m

    assert m.LAST_RESORT_MIN_WIDTH == 24.0
    backend = get_backend("dlib_mtcnn")
    grey = backend.prepare(clip_frames[0][0])
    box = np.array([[100.0, 80.0, 100.0 + width, 80.0 + 1.2 * width, 0.9]], np.float32)
    monkeypatch.setattr(m, "detect_faces", lambda *a, **k: (box, np.zeros((1, 5, 2), np.float32)))
    monkeypatch.setattr(m, "points_disagreement", lambda *a: 0.0)
    found = backend._mtcnn.detect_confirmed(grey)
    assert (len(found) == 1) == kept
    monkeypatch.setattr(m, "points_disagreement", lambda *a: float("nan"))
    assert backend._mtcnn.detect_confirmed(grey) == []  # no number is no agreement
