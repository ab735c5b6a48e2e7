"""Training and serving share one crop: a face image made into a training crop equals what predict cuts from a
video of it; tight images, detector misses and the crop tree."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmfer.bundle import DEFAULT_DECODE
from mmfer.faces.align import FER2013_RIGID, framing_box, rigid_frame
from mmfer.faces.crops import frame_crop, frame_faces, image_crop, place_face, tight_crop_detector_box
from mmfer.faces.track import iou


def _tight_face(frame: np.ndarray, points68: np.ndarray, side: int = 48) -> np.ndarray:
    """A FER2013-framed grey square of the face (the eyes and nose where FER2013 has them), ``side`` px."""
    import cv2

    c, r = rigid_frame(points68)
    s = r / FER2013_RIGID[2]
    x0, y0 = int(round(c[0] - FER2013_RIGID[0] * s)), int(round(c[1] - FER2013_RIGID[1] * s))
    sq = frame[y0: y0 + int(round(s)), x0: x0 + int(round(s))]
    grey = cv2.cvtColor(cv2.resize(sq, (side, side), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    return np.repeat(grey[..., None], 3, axis=2)


@pytest.fixture(scope="module")
def tight_faces(clip_frames, clip_tracks):
    """Six FER2013-like 48-px faces cut from the real fixture clips."""
    out = []
    for frames, track in zip(clip_frames, clip_tracks):
        for i in np.flatnonzero(track.mask)[:3]:
            out.append(_tight_face(frames[i], track.landmarks[i]))
    return out


def _write_lossless(path, frame: np.ndarray, n: int = 4, fps: int = 8) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frame.shape[1], frame.shape[0], "bgr0"
        for _ in range(n):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_training_crop_equals_the_crop_predict_cuts_from_a_video(tmp_path, clip_frames, dlib_backend):
    """The crop a training face gets (frame_crop) and the one predict's video path makes of the same frame
    (process_clip with the default model's decode settings, then the branch framing) are equal: the video is
    lossless, so the tolerance is 1 grey level (the decoder's colour conversion), mean under 0.1."""
    from mmfer.data.index import ClipEntry
    from mmfer.data.preprocess import process_clip

    frame = clip_frames[0][5]
    d = DEFAULT_DECODE
    train = frame_crop(frame, dlib_backend, crop_size=d.crop_size, framing="fer2013", detect_max_side=d.detect_max_side)
    assert train is not None and train.detected
    video = tmp_path / "face.mkv"
    _write_lossless(video, frame)
    arrays, _, rec = process_clip(ClipEntry("face", "Test", None, video), d)
    assert rec.status == "ok" and arrays["mask"][0]
    served = frame_faces(np.asarray(arrays["faces"][0]), "fer2013")
    assert served.shape == train.crop.shape == (95, 95, 3)
    diff = np.abs(served.astype(int) - train.crop.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.1, (diff.max(), diff.mean())


def test_tight_crop_detector_box_is_where_the_detector_puts_it(tight_faces, dlib_backend):
    """The box implied for a placed FER2013-framed face overlaps the box dlib's detector finds for it."""
    overlaps = []
    for face in tight_faces:
        frame, box = place_face(face, size=160, frame_hw=(240, 320), at=(80, 40))
        dets = dlib_backend.detect(dlib_backend.prepare(frame))
        if dets:
            overlaps.append(iou(max(dets, key=lambda d: d.area).box, tight_crop_detector_box(box)))
    assert len(overlaps) >= 3
    assert np.median(overlaps) > 0.6, overlaps


def test_a_missed_face_is_fitted_in_the_hint_box(tight_faces, dlib_backend):
    """Where the detector finds nothing the hint box still gives a crop; without a hint, None (no face)."""
    face = tight_faces[0]
    frame, box = place_face(face, size=60, frame_hw=(240, 320), at=(10, 10), background="constant")
    blank = np.full((240, 320, 3), 128, np.uint8)
    assert frame_crop(blank, dlib_backend, crop_size=112, framing=None, detect_max_side=320) is None
    fc = frame_crop(blank, dlib_backend, crop_size=112, framing=None, detect_max_side=320,
                    hint_box=np.array([100, 60, 200, 160], np.float32))
    assert fc is not None and not fc.detected and fc.crop.shape == (112, 112, 3)
    hinted = frame_crop(frame, dlib_backend, crop_size=112, framing="fer2013", detect_max_side=320,
                        hint_box=tight_crop_detector_box(box))
    assert hinted is not None and hinted.crop.std() > 10  # a face, not the grey fill


def test_image_crop_frames_a_tight_face_like_a_video_frame(tight_faces, dlib_backend):
    """A tight image goes the video way: the crop's eyes sit where the aligned template puts them, in FER2013's
    framing, whatever the image's own size."""
    x0, y0, x1, y1 = framing_box(112)
    for face in tight_faces[:3]:
        small = image_crop(face, dlib_backend, crop_size=112, framing="fer2013", detect_max_side=320)
        big = image_crop(np.repeat(np.repeat(face, 2, 0), 2, 1), dlib_backend, crop_size=112, framing="fer2013",
                         detect_max_side=320)
        assert small.crop.shape == (y1 - y0, x1 - x0, 3)
        # the same face at twice the size is cut the same way, up to resampling
        assert np.abs(small.crop.astype(float) - big.crop.astype(float)).mean() < 12


def test_frame_faces_rejects_an_unknown_framing():
    with pytest.raises(ValueError, match="framing"):
        frame_faces(np.zeros((1, 112, 112, 3), np.uint8), "fer")


def test_crop_tree_keeps_names_and_held_out_split_and_resumes(tmp_path, tight_faces):
    """The crop tree has the image tree's names (so the same faces are held out), is the same when rebuilt,
    resumes without redoing faces, refuses other settings, and counts detector misses per class."""
    import cv2

    from mmfer.data.sources import media_folder_records
    from mmfer.data.video_faces import build_video_face_tree
    from mmfer.data.splits import holdout_split
    from mmfer.errors import MmferError

    src = tmp_path / "fer"
    for i, face in enumerate(tight_faces * 2):
        emotion = ("Angry", "Happy", "Sad")[i % 3]
        (src / "Train" / emotion).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(src / "Train" / emotion / f"img{i:02d}.jpg"), face[..., ::-1])
    (src / "Train" / "Sad" / "broken.jpg").write_bytes(b"not an image")
    dst = tmp_path / "crops"
    with pytest.raises(MmferError, match="face backend"):  # a mistake leaves no settings to refuse the fixed command
        build_video_face_tree(src, dst, face_backend="foo", progress=False)
    with pytest.raises(MmferError):
        build_video_face_tree(tmp_path / "no_such_tree", dst, progress=False)
    assert not (dst / "settings.json").exists()
    summary = build_video_face_tree(src, dst, progress=False)
    assert summary["made"] == 12 and len(summary["errors"]) == 1 and "broken" in summary["errors"][0]["clip_id"]
    assert sum(summary["per_class"].values()) == 12
    assert 0 <= summary["detector_missed"] <= 12
    assert json.loads((dst / "summary.json").read_text())["made"] == 12
    crop = cv2.imread(str(dst / "Train" / "Angry" / "img00.png"))
    assert crop.shape == (95, 95, 3)

    good = [r for r in media_folder_records(src, "Train", "face_image") if "broken" not in r.path]
    made = media_folder_records(dst, "Train", "face_image")
    assert [(r.clip_id, r.label) for r in good] == [(r.clip_id, r.label) for r in made]
    assert ([r.clip_id for r in holdout_split(good, fraction=0.25, seed=0)[1]]
            == [r.clip_id for r in holdout_split(made, fraction=0.25, seed=0)[1]])

    before = {p.name: p.read_bytes() for p in (dst / "Train").rglob("*.png")}
    (dst / "Train" / "Happy" / "img01.png").unlink()
    again = build_video_face_tree(src, dst, progress=False)  # resumes: only the removed face is made
    assert again["made"] == 12
    assert {p.name: p.read_bytes() for p in (dst / "Train").rglob("*.png")} == before  # seeded per face
    # two workers (spawned here, torch being loaded; off Linux always): the same crops
    pooled = build_video_face_tree(src, tmp_path / "crops2", workers=2, progress=False)
    assert pooled["made"] == 12 and {p.name: p.read_bytes() for p in (tmp_path / "crops2" / "Train").rglob("*.png")} == before
    with pytest.raises(MmferError, match=r"other settings \(seed 0 there, 1 now\); remove it"):
        build_video_face_tree(src, dst, seed=1, progress=False)
    settings = json.loads((dst / "settings.json").read_text())
    (dst / "settings.json").write_text(json.dumps({**settings, "crops_version": 0}))
    with pytest.raises(MmferError, match="crops_version 0 there, .*made by an older mmfer"):
        build_video_face_tree(src, dst, progress=False)
