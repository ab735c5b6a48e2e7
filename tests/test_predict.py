"""`mmfer predict` on the real CREMA-D fixtures with a stand-in bundle (seeded, untrained models): rows,
fallbacks, error rows, images, plots, submission, the CLI, and that each branch sees what training sees."""

from __future__ import annotations

import csv
import json
import logging
import re
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmfer.data.video import read_audio, read_frames
from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS
from mmfer.predict import (
    FER2013_RIGID,
    PREDICTION_COLUMNS,
    Predictor,
    audio_windows,
    framing_box,
    predict,
    read_predictions,
    write_prediction_submission,
)
from predict_helpers import STANDIN_CACHE, standin_bundle, standin_run, write_video


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return standin_bundle(tmp_path_factory.mktemp("standin"))


@pytest.fixture(scope="module")
def extra_inputs(tmp_path_factory, cremad_videos, cremad_audio):
    """Generated inputs: face crops and a frame as images, a video without audio, one without a face, broken files."""
    d = tmp_path_factory.mktemp("inputs")
    frames, fps = read_frames(cremad_videos[3], fps=8)
    write_video(d / "no_audio.mp4", frames[:12], fps=fps)
    write_video(d / "no_face.mp4", np.full((16, 120, 160, 3), 90, np.uint8), fps=8, audio=read_audio(cremad_audio[0]))
    write_video(d / "nothing.mp4", np.full((8, 120, 160, 3), 90, np.uint8), fps=8)
    img = d / "images"
    img.mkdir()
    cv2.imwrite(str(img / "frame.jpg"), frames[8][..., ::-1])  # 480x360: needs detection and alignment
    from mmfer.data.index import ClipEntry
    from mmfer.data.preprocess import process_clip

    from mmfer.bundle import DEFAULT_DECODE

    arrays, _, _ = process_clip(ClipEntry("x", "Test", None, cremad_videos[3]), DEFAULT_DECODE)
    x0, y0, x1, y1 = framing_box(arrays["faces"].shape[1])
    for k in (3, 9):  # FER2013-like 48x48 grey crops, taken as faces as they are
        crop = cv2.resize(arrays["faces"][k][y0:y1, x0:x1], (48, 48), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(img / f"crop{k}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY))
    sky = np.linspace(60, 200, 300, dtype=np.uint8)[None, :, None]  # a smooth gradient: no face, not blank
    cv2.imwrite(str(img / "landscape.png"), np.broadcast_to(sky, (200, 300, 3)).copy())
    (d / "broken.mp4").write_bytes(b"\x00garbage" * 500)
    (img / "corrupt.jpg").write_bytes(b"not a jpeg" * 50)
    (d / "notes.txt").write_text("not media")
    return d


@pytest.fixture(scope="module")
def result(bundle, extra_inputs, cremad_videos, cremad_audio, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    inputs = [*cremad_videos, *cremad_audio, extra_inputs, extra_inputs / "notes.txt", out / "missing.wav"]
    return predict(inputs, model=bundle, out=out / "p.csv", plots=out / "plots", frames=out / "frames.csv",
                   progress=False)


def _by_id(result):
    return {p.clip_id: p for p in result.predictions}


def test_fixture_videos(result, cremad_videos):
    rows = _by_id(result)
    for v in cremad_videos:
        p = rows[v.stem]
        assert p.kind == "video" and p.path == str(v)
        assert p.probs.sum() == pytest.approx(1.0) and p.probs.min() > 0
        assert p.modalities == "face+audio" and p.face_ratio > 0.9 and p.warning == ""
        assert p.predicted == EMOTIONS[int(np.argmax(p.probs))]
        with pytest.raises(AttributeError, match="the predicted class is Prediction.predicted, the true one"):
            p.label  # noqa: B018 - its old meaning (the prediction) read as a truth measured nothing
        assert p.truth is None  # no labels_from
        assert set(p.branches) == {"face", "audio"}  # the stand-in's stated weights: face 0.6, audio 0.4
        np.testing.assert_allclose(p.probs, 0.6 * p.branches["face"] + 0.4 * p.branches["audio"], atol=1e-12)
    # the face and audio models really differ per clip (not constant rows)
    assert np.ptp(np.stack([rows[v.stem].probs for v in cremad_videos]), axis=0).max() > 1e-6


def test_result_in_python(result, caplog):
    """What a notebook reads: a short repr, rows for a DataFrame, the class order as ``classes`` (``labels`` are
    true classes everywhere, so the old name is an error, not the other meaning)."""
    n, bad = len(result.predictions), len(result.errors)
    assert repr(result).startswith(f"PredictResult({n} input(s), {n - bad} analysed, {bad} error(s), model=")
    assert len(repr(result)) < 400 and str(result) == result.table()
    rows = result.rows()
    assert [r["path"] for r in rows] == [p.path for p in result.predictions]
    assert list(rows[0]) == list(PREDICTION_COLUMNS)  # no truths here: no label column, as in the CSV
    ok = next(i for i, p in enumerate(result.predictions) if p.ok)
    assert [rows[ok][c] for c in EMOTIONS] == pytest.approx(result.probs[ok].tolist())
    err = next(i for i, p in enumerate(result.predictions) if not p.ok)
    assert all(rows[err][c] is None for c in EMOTIONS) and rows[err]["warning"]
    assert result.classes == tuple(EMOTIONS) and result.truths == [None] * n
    with pytest.raises(AttributeError, match="PredictResult.classes"):
        result.labels  # noqa: B018


def test_audio_files(result, cremad_audio):
    rows = _by_id(result)
    for a in cremad_audio:
        p = rows[a.stem]
        assert p.kind == "audio" and p.modalities == "audio" and p.face_ratio is None
        assert p.probs.sum() == pytest.approx(1.0)


def test_fallbacks(result):
    rows = _by_id(result)
    assert rows["no_audio"].modalities == "face" and "no audio: face only" in rows["no_audio"].warning
    assert rows["no_audio"].face_ratio > 0.9
    assert rows["no_face"].modalities == "audio" and rows["no_face"].face_ratio == 0.0
    np.testing.assert_allclose(rows["no_face"].probs, rows["no_face"].branches["audio"])  # renormalised: audio alone
    assert "no face found in any frame: audio only" in rows["no_face"].warning
    nothing = rows["nothing"]
    assert nothing.modalities == "" and nothing.predicted == "" and "uniform probabilities" in nothing.warning
    np.testing.assert_allclose(nothing.probs, 1 / 7)


def test_error_rows_do_not_stop_the_run(result):
    rows = _by_id(result)
    for cid, why in (("broken", "not a video file"), ("corrupt", "not a readable image"),
                     ("landscape", "no face found"), ("notes", "unsupported file type '.txt'"),
                     ("missing", "file not found")):
        p = rows[cid]
        assert not p.ok and p.predicted == "" and why in p.warning, (cid, p.warning)
    assert len(result.errors) == 5 and len(result.predictions) == 6 + 6 + 3 + 5 + 1 + 2


def test_images(result):
    rows = _by_id(result)
    for cid in ("crop3", "crop9", "frame"):
        p = rows[cid]
        assert p.kind == "image" and p.modalities == "face" and p.face_ratio == 1.0 and p.warning == ""
        assert p.probs.sum() == pytest.approx(1.0)


def test_csv(result):
    with open(result.out, newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == PREDICTION_COLUMNS
    assert len(rows) == 1 + len(result.predictions)
    by_id = {r["clip_id"]: r for r in read_predictions(result.out)}
    ok = by_id["1001_DFA_ANG_XX"]
    assert sum(float(ok[e]) for e in EMOTIONS) == pytest.approx(1.0, abs=1e-5)
    assert ok["modalities"] == "face+audio" and float(ok["face_ratio"]) > 0.9
    bad = by_id["broken"]
    assert [bad[e] for e in ("predicted", *EMOTIONS, "face_ratio", "modalities")] == [""] * 10 and bad["warning"]
    assert by_id["1002_DFA_ANG_XX"]["face_ratio"] == ""


def test_per_frame_rows(result, cremad_videos):
    """--frames: one row per analysed frame (face box, probabilities) and one per audio window."""
    from mmfer.predict import FRAME_COLUMNS

    with open(result.frames, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(FRAME_COLUMNS)
    clip = cremad_videos[0].stem
    face = [r for r in rows if r["clip_id"] == clip and r["modality"] == "face"]
    audio = [r for r in rows if r["clip_id"] == clip and r["modality"] == "audio"]
    times = [float(r["time"]) for r in face]
    assert len(face) == 18 and times == sorted(times) and times[1] == pytest.approx(1 / 8)  # 8 frames/s
    with_face = [r for r in face if r["face"] == "1"]
    assert with_face and all(float(r["x1"]) > float(r["x0"]) for r in with_face)
    probs = np.array([[float(r[e]) for e in EMOTIONS] for r in with_face])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    pred = {p.clip_id: p for p in result.predictions}[clip]
    np.testing.assert_allclose(probs.mean(axis=0), pred.branches["face"], atol=1e-4)  # mean pooling of these frames
    assert audio and all(r["face"] == "" and r["x0"] == "" for r in audio)
    no_face = [r for r in rows if r["clip_id"] == "no_face" and r["modality"] == "face"]
    assert no_face and all(r["face"] == "0" and r["Angry"] == "" for r in no_face)
    assert not [r for r in rows if r["clip_id"] == "crop3"]  # images and audio files have no frames


def test_frame_rows_as_dataframe(tmp_path, bundle, cremad_videos):
    from mmfer.predict import FRAME_COLUMNS, Predictor, frame_rows, frames_dataframe

    pred = Predictor(bundle).predict_file(cremad_videos[1], timeline=True)
    rows = frame_rows(pred)
    assert rows and rows[0]["modality"] == "face" and set(rows[0]) == set(FRAME_COLUMNS)
    with pytest.raises(MmferError, match="frame rows need a prediction made with timeline=True"):
        frame_rows(Predictor(bundle).predict_file(cremad_videos[1]))  # [] read as "no frames"
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(MmferError, match="needs pandas"):
            frames_dataframe(rows)
    else:
        df = frames_dataframe(rows)
        assert len(df) == len(rows) and list(df.columns)[:4] == ["path", "clip_id", "modality", "time"]


def test_plots(result, cremad_videos):
    names = sorted(p.name for p in result.plots)
    expected = sorted([f"{v.stem}.png" for v in cremad_videos] + ["no_audio.png", "no_face.png", "nothing.png"])
    assert names == expected
    for p in result.plots:
        img = cv2.imread(str(p))
        assert img is not None and img.shape[0] > 200 and img.std() > 5


def test_plots_of_long_names_fit_the_disk_and_a_plot_that_fails_costs_no_rows(bundle, cremad_videos, tmp_path,
                                                                               monkeypatch, caplog):
    """Two 240-byte names cut to one 200-byte id: the second plot took the file's whole name, too long for the
    disk, and the error lost --out with every finished row."""
    import shutil

    (tmp_path / "in").mkdir()
    for part in (1, 2):
        shutil.copy(cremad_videos[0], tmp_path / "in" / f"{'x' * 240}_part{part}.flv")
    done = predict([tmp_path / "in"], model=bundle, out=tmp_path / "p.csv", plots=tmp_path / "plots", progress=False)
    names = sorted(p.name for p in done.plots)
    assert names == [f"{'x' * 200}.png", f"{'x' * 200}_2.png"]
    import mmfer.plots

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mmfer.plots, "plot_timeline", full_disk)
    again = predict([tmp_path / "in"], model=bundle, out=tmp_path / "q.csv", plots=tmp_path / "plots2",
                    progress=False)
    assert len(read_predictions(tmp_path / "q.csv")) == 2 and not again.plots and not again.errors
    assert "its plot could not be written (" in caplog.text and "No space left" in caplog.text


def test_submission(result, tmp_path):
    clips = [p for p in result.predictions if p.kind not in ("audio", "image")]  # a Test set: videos (and errors)
    done = write_prediction_submission(clips, tmp_path / "team.zip")
    with zipfile.ZipFile(done["zip"]) as zf:
        names = sorted(zf.namelist())
        words = {n[:-4]: zf.read(n).decode() for n in names}
    assert names == sorted(f"{p.clip_id}.txt" for p in clips)
    assert set(words.values()) <= set(EMOTIONS)
    assert words["1001_DFA_HAP_XX"] == _by_id(result)["1001_DFA_HAP_XX"].predicted
    assert set(done["filled"]) == {"broken", "corrupt", "landscape", "notes", "missing", "nothing"}
    assert done["problems"] == []
    with pytest.warns(DeprecationWarning, match=r"write_prediction_submission\(out_zip=\) is write_prediction_submission\(out=\)"):
        old = write_prediction_submission(clips, out_zip=tmp_path / "old.zip")  # the old name, for a release
    assert zipfile.ZipFile(old["zip"]).namelist() == zipfile.ZipFile(done["zip"]).namelist()


def test_submission_refuses_duplicate_clip_ids(tmp_path, bundle, cremad_audio, monkeypatch):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "same.mp3").write_bytes(cremad_audio[0].read_bytes())
    r = predict([tmp_path], model=bundle, progress=False)  # without a submission both rows are kept
    assert [p.clip_id for p in r.predictions] == ["same", "same"] and r.predictions[0].path != r.predictions[1].path
    with pytest.raises(MmferError, match="same.*appear twice|appear twice.*same"):
        predict([tmp_path], model=bundle, submission=tmp_path / "t.zip", progress=False)
    real, analysed = Predictor.predict_file, []
    monkeypatch.setattr(Predictor, "predict_file", lambda self, path, *a, **k: analysed.append(path)
                        or real(self, path, *a, **k))
    # another extension than .zip is refused before any file is analysed, naming --submission
    with pytest.raises(MmferError, match=r"--submission .*t\.tar: expected a file ending in \.zip"):
        predict([tmp_path / "a"], model=bundle, submission=tmp_path / "t.tar", progress=False)
    assert analysed == []
    # a sound file beside the videos of a Test folder would be an extra clip in the zip: refused before any work,
    # as are two names that differ only in letter case (one file on Windows and macOS, and to submit --check)
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "clip.flv").write_bytes(b"x")
    (tmp_path / "v" / "stray.wav").write_bytes(cremad_audio[0].read_bytes())
    with pytest.raises(MmferError, match=r"--submission: 1 sound or image file\(s\) beside the videos .*stray\.wav"):
        predict([tmp_path / "v"], model=bundle, submission=tmp_path / "t.zip", progress=False)
    (tmp_path / "a" / "SAME.mp3").write_bytes(b"x")
    with pytest.raises(MmferError, match="appear twice .letter case aside.*SAME"):
        predict([tmp_path / "a"], model=bundle, submission=tmp_path / "t.zip", progress=False)
    assert analysed == []
    (tmp_path / "a" / "SAME.mp3").unlink()
    done = predict([tmp_path / "a"], model=bundle, submission=tmp_path / "t2", progress=False)
    assert done.submission["zip"] == str(tmp_path / "t2.zip") and (tmp_path / "t2.zip").is_file()


def test_framing_box_matches_fer2013():
    """The face-model crop puts the template's eyes and nose where FER2013 images have them."""
    from mmfer.faces.align import rigid_frame, template_68

    for size in (64, 112):
        x0, y0, x1, y1 = framing_box(size)
        assert x1 - x0 == y1 - y0 and 0 <= x0 and 0 <= y0 and x1 <= size and y1 <= size
        c, r = rigid_frame(template_68(size))
        side = x1 - x0
        np.testing.assert_allclose([(c[0] - x0) / side, (c[1] - y0) / side, r / side], FER2013_RIGID, atol=1.0 / side)


def test_face_image_branch_sees_what_scoring_sees(tmp_path, bundle):
    """A tight crop through predict gives what `mmfer scores` gives on an image folder with the same views."""
    import dataclasses

    import torch

    from mmfer.data.sources import source_records
    from mmfer.engine.scoring import split_scores

    img = tmp_path / "Test" / "Happy"
    img.mkdir(parents=True)
    rng = np.random.default_rng(0)
    cv2.imwrite(str(img / "face.png"), rng.integers(0, 255, (48, 48), dtype=np.uint8))
    pr = Predictor(bundle, device="cpu")
    face = pr.bundle.branches[0]
    assert face.kind == "face_image" and face.options["image_views"] == 10
    got = pr.predict_file(img / "face.png")
    config = dataclasses.replace(face.config, data=dataclasses.replace(face.config.data, eval_views=10))
    _, _, ref = split_scores(face.model, face.checkpoint, config=config, data=tmp_path, split="Test",
                             device=torch.device("cpu"), records=source_records(tmp_path, "Test", "face_image"),
                             progress=False)
    np.testing.assert_allclose(got.probs, ref[0], atol=1e-6)  # one branch only: fusion is the identity


def test_tight_photo_branch_scores_tight_images_only(tmp_path, extra_inputs, cremad_videos):
    """A ``serves: tight_images`` model joins the frame model on FER2013-like photos, and nothing else."""
    from mmfer.bundle import write_bundle

    face = standin_run(tmp_path / "face", "face_frame", seed=1)
    photo = standin_run(tmp_path / "photo", "face_frame", seed=3)
    audio = standin_run(tmp_path / "audio", "audio_cnn", seed=2)
    out = tmp_path / "bundle"
    write_bundle(out, [{"name": "face", "run": face, "weight": 0.6},
                       {"name": "face_photo1", "run": photo, "weight": 0.6, "options": {"serves": "tight_images"}},
                       {"name": "audio", "run": audio, "weight": 0.4}])
    img = extra_inputs / "images"
    rows = {p.clip_id: p for p in predict([img / "crop3.png", img / "frame.jpg", cremad_videos[0]], model=out,
                                          progress=False).predictions}
    tight = rows["crop3"]
    assert set(tight.branches) == {"face", "face_photo1"} and tight.warning == ""
    assert not np.allclose(tight.branches["face"], tight.branches["face_photo1"])  # two models really scored
    np.testing.assert_allclose(tight.probs, (tight.branches["face"] + tight.branches["face_photo1"]) / 2, atol=1e-12)
    assert set(rows["frame"].branches) == {"face"} and rows["frame"].ok  # a whole frame: the frame model alone
    video = rows[cremad_videos[0].stem]
    assert set(video.branches) == {"face", "audio"} and video.warning == ""
    np.testing.assert_allclose(video.probs, 0.6 * video.branches["face"] + 0.4 * video.branches["audio"], atol=1e-12)
    only = tmp_path / "only_photo"
    write_bundle(only, [{"name": "face_photo1", "run": photo, "weight": 1, "options": {"serves": "tight_images"}}])
    rows = {p.clip_id: p for p in predict([img / "crop3.png", img / "frame.jpg"], model=only,
                                          progress=False).predictions}
    assert rows["crop3"].ok and not rows["frame"].ok
    assert "only scores tight face images" in rows["frame"].warning and "480x360" in rows["frame"].warning


def test_detected_faces_branch_joins_the_video_path_but_never_a_tight_photo(tmp_path, extra_inputs, cremad_videos):
    """A ``serves: detected_faces`` model scores video frames and larger images beside the frame model, and a
    tight photo reads exactly as without it."""
    from mmfer.bundle import write_bundle

    face = standin_run(tmp_path / "face", "face_frame", seed=1)
    extra = standin_run(tmp_path / "extra", "face_frame", seed=4)
    photo = standin_run(tmp_path / "photo", "face_frame", seed=3)
    with_extra, without = tmp_path / "with", tmp_path / "without"
    common = [{"name": "face1", "run": face, "weight": 0.3},
              {"name": "face_photo1", "run": photo, "weight": 0.3, "options": {"serves": "tight_images"}}]
    write_bundle(with_extra, [*common, {"name": "face2", "run": extra, "weight": 0.3,
                                        "options": {"serves": "detected_faces"}}])
    write_bundle(without, common)
    img = extra_inputs / "images"
    inputs = [img / "crop3.png", img / "frame.jpg", cremad_videos[0]]
    got = {p.clip_id: p for p in predict(inputs, model=with_extra, progress=False).predictions}
    ref = {p.clip_id: p for p in predict(inputs, model=without, progress=False).predictions}
    assert set(got["crop3"].branches) == {"face1", "face_photo1"}
    np.testing.assert_allclose(got["crop3"].probs, ref["crop3"].probs, atol=1e-12)  # tight photo: unchanged
    for name in ("frame", cremad_videos[0].stem):
        assert set(got[name].branches) == {"face1", "face2"} and got[name].ok
        np.testing.assert_allclose(got[name].probs, (got[name].branches["face1"] + got[name].branches["face2"]) / 2,
                                   atol=1e-12)
        assert not np.allclose(got[name].probs, ref[name].probs)
    only = tmp_path / "only_detected"
    write_bundle(only, [{"name": "face2", "run": extra, "weight": 1, "options": {"serves": "detected_faces"}}])
    rows = {p.clip_id: p for p in predict([img / "crop3.png", img / "frame.jpg"], model=only,
                                          progress=False).predictions}
    assert rows["frame"].ok and not rows["crop3"].ok and "only scores faces its detector cuts" in rows["crop3"].warning


@pytest.mark.parametrize("branch", ["landmark_brnn", "c3d", "cnn_lstm"])
def test_cache_branches_see_what_scoring_sees(tmp_path, branch, cremad_videos):
    """A RUN of a cache-trained branch: predict's in-memory inputs equal scoring the clip from a real cache."""
    from mmfer.data.preprocess import preprocess
    from mmfer.engine.scoring import score_split
    from mmfer.scores import read_scores

    run = standin_run(tmp_path / "run", branch)
    video = cremad_videos[5]
    preprocess([_entry(video)], tmp_path / "cache", settings=STANDIN_CACHE, progress=False)
    ref = read_scores(score_split(run, data=tmp_path / "cache", split="Test", out=tmp_path / "s.csv",
                                  device="cpu", progress=False))
    got = predict([video], model=run, progress=False).predictions[0]
    assert got.modalities == "face" and got.face_ratio > 0.9
    np.testing.assert_allclose(got.probs, ref.probs[0], atol=1e-6)


def _entry(path: Path):
    from mmfer.data.index import ClipEntry

    return ClipEntry(path.stem, "Test", None, path)


def test_whole_inputs_are_analysed_and_duration_limits_the_span(tmp_path, bundle, result, cremad_videos,
                                                                 cremad_audio):
    """Issue 21: a bundle's frame cap no longer cuts what predict analyses (no "only the first" warning);
    --start/--duration limit the span, sound included."""
    import json
    import shutil

    capped = tmp_path / "capped"
    shutil.copytree(bundle, capped)
    info = json.loads((capped / "bundle.json").read_text())
    info["decode"] = {"fps": 8, "max_frames": 8}  # one second, once the most predict looked at
    (capped / "bundle.json").write_text(json.dumps(info))
    whole = Predictor(capped).predict_file(cremad_videos[0], timeline=True)
    assert "only the first" not in whole.warning and len(whole.timeline["frame_times"]) > 8
    assert whole.segments[-1].end == pytest.approx(whole.timeline["frame_times"][-1] + 1 / 8, abs=0.1)
    one_s = Predictor(capped, duration=1.0)
    video, audio = (one_s.predict_file(p, timeline=True) for p in (cremad_videos[0], cremad_audio[0]))
    assert len(video.timeline["frame_times"]) == 8 and video.segments[-1].end == pytest.approx(1.0, abs=0.05)
    assert audio.segments[-1].end == pytest.approx(1.0, abs=0.01)
    full = _by_id(result)
    for p in (video, audio):
        assert p.ok and not np.allclose(p.branches["audio"], full[p.clip_id].branches["audio"], atol=1e-7)
    later = Predictor(capped, start=1.0).predict_file(cremad_videos[0], timeline=True)
    assert later.segments[0].start == 1.0 and later.timeline["frame_times"][0] == pytest.approx(1.0)
    for path in (cremad_videos[0], cremad_audio[0]):  # a sound file too (it was a uniform "no audio samples" row)
        beyond = Predictor(capped, start=999.0).predict_file(path)
        assert not beyond.ok and "nothing to analyse after --start 999 s" in beyond.warning, beyond.warning
        assert beyond.warning.startswith("nothing")  # the path column names the file; the Python API's error does:
        with pytest.raises(MmferError, match=f"^{re.escape(str(path))}: nothing to analyse after --start 999 s"):
            list(Predictor(capped, start=999.0).segments(path))
    # a picture of 1 s with 3 s of sound, --start 2: the sound after it is analysed (it was "nothing to analyse")
    from predict_helpers import write_video

    rng = np.random.default_rng(0)
    short = write_video(tmp_path / "short_picture.mp4", rng.integers(0, 255, (8, 48, 64, 3)), fps=8,
                        audio=(0.3 * np.sin(np.arange(48000) * 0.05) * rng.random(48000)).astype(np.float32))
    tail = Predictor(capped, start=2.0).predict_file(short)
    assert tail.ok and tail.modalities == "audio" and tail.warning == "the picture ends before --start 2 s: sound only"
    info["branches"].pop("audio")  # a face-only model has nothing to hear there: an error row, as before
    (capped / "bundle.json").write_text(json.dumps(info))
    faces_only = Predictor(capped, start=2.0).predict_file(short)
    assert not faces_only.ok and "nothing to analyse after --start 2 s" in faces_only.warning, faces_only.warning
    assert tail.segments[0].start == 2.0 and tail.segments[-1].end == pytest.approx(3.0, abs=0.1)  # AAC pads


def test_segments_cover_the_clip_and_streaming_changes_no_frame(bundle, cremad_videos):
    """Cut into 0.5-s segments, a clip is analysed batch by batch as a stream: the segments tile it from 0 to
    its end (the last one between half and one and a half windows), every frame reads as in one pass, and the
    file's row is the length-weighted mean of its segments."""
    from mmfer.inference.segments import SegmentSettings, summarise

    one = Predictor(bundle).predict_file(cremad_videos[2], timeline=True)
    assert len(one.segments) == 1 and np.allclose(one.segments[0].probs, one.probs)
    cut = Predictor(bundle, segments=SegmentSettings(seconds=0.5)).predict_file(cremad_videos[2], timeline=True)
    segs = cut.segments
    assert len(segs) >= 4 and segs[0].start == 0.0
    assert all(a.end == b.start for a, b in zip(segs, segs[1:]))
    assert all(s.seconds == pytest.approx(0.5) for s in segs[:-1]) and 0.25 <= segs[-1].seconds < 0.75
    assert segs[-1].end == pytest.approx(one.segments[0].end)
    np.testing.assert_allclose(cut.timeline["frame_probs"], one.timeline["frame_probs"], atol=1e-6)
    np.testing.assert_allclose(cut.timeline["audio_probs"], one.timeline["audio_probs"], atol=1e-6)
    np.testing.assert_allclose(cut.probs, summarise(segs), atol=1e-9)
    assert {s.modalities for s in segs} == {"face+audio"} and all(s.track == "1" for s in segs)


def test_audio_windows():
    assert audio_windows(8000, 16000) == [(0, 8000)]
    w = audio_windows(40000, 16000)
    assert w[0] == (0, 16000) and w[1] == (8000, 24000) and w[-1][1] <= 40000 and len(w) == 4


def test_cli(tmp_path, bundle, cremad_videos, capsys, caplog, monkeypatch):
    from mmfer.cli import main

    (tmp_path / "ro").mkdir()
    out = tmp_path / "pred.csv"
    rc = main(["predict", str(cremad_videos[0]), str(tmp_path / "gone.flv"), "--model", str(bundle),
               "--out", str(out), "--no-progress"])
    assert rc == 0
    captured = capsys.readouterr()
    text = captured.out
    assert "1001_DFA_ANG_XX" in text and "face+audio" in text and "file not found" in text
    assert "2 input(s): 1 predicted, 1 error(s)" in text
    # logged too (stderr), so a log of --quiet runs and a Python caller see them
    said = f"1 of 2 input(s) could not be read, e.g. {tmp_path / 'gone.flv'}: file not found"
    assert said in caplog.text and f"warning column of {out}" in caplog.text
    caplog.clear()
    import soundfile as sf

    sf.write(tmp_path / "silence.wav", np.zeros(32000, dtype=np.float32), 16000)  # read, but nothing to go on
    assert main(["predict", str(cremad_videos[0]), str(tmp_path / "silence.wav"), "--model", str(bundle),
                 "--out", str(tmp_path / "s.csv"), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "2 input(s): 1 predicted, 1 without a prediction, 0 error(s)" in captured.out
    assert "could not be read" not in caplog.text  # nothing to go on is no error
    # --strict: exit code 1 when any input got an error row, the CSV written all the same
    assert main(["predict", str(tmp_path / "silence.wav"), str(tmp_path / "gone.flv"), "--model", str(bundle),
                 "--out", str(tmp_path / "strict.csv"), "--quiet", "--strict"]) == 1
    assert len(read_predictions(tmp_path / "strict.csv")) == 2
    assert main(["predict", str(tmp_path / "silence.wav"), "--model", str(bundle), "--out", str(tmp_path / "ok.csv"),
                 "--quiet", "--strict"]) == 0
    # --out -: no CSV and no record, the table on stdout only (a read-only working folder could not run predict)
    capsys.readouterr()
    monkeypatch.chdir(tmp_path / "ro")
    assert main(["predict", str(cremad_videos[0]), "--model", str(bundle), "--out", "-", "--no-progress"]) == 0
    assert "1001_DFA_ANG_XX" in capsys.readouterr().out and list((tmp_path / "ro").iterdir()) == []
    # --json: one object on stdout instead of the table, errors as an object too (a script parses either)
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "silence.wav"), str(tmp_path / "gone.flv"), "--model", str(bundle),
                 "--out", str(tmp_path / "j.csv"), "--json"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert (said["ok"], said["inputs"], said["predicted"], said["without_prediction"], said["errors"]) == (
        False, 2, 0, 1, 1)
    assert said["error_rows"] == [{"path": str(tmp_path / "gone.flv"), "warning": "file not found"}]
    assert said["out"] == str(tmp_path / "j.csv") and said["submission"] is None and said["plots"] == []
    assert main(["predict", str(tmp_path / "silence.wav"), "--model", str(tmp_path / "nope"), "--json"]) == 2
    got = capsys.readouterr()
    assert json.loads(got.out) == {"ok": False, "error": got.err.split("error: ", 1)[1].strip()}
    assert [r["clip_id"] for r in read_predictions(out)] == ["1001_DFA_ANG_XX", "gone"]
    assert main(["predict", str(cremad_videos[0]), "--model", str(tmp_path / "nope"), "--out", str(out)]) == 2
    # nothing named exists (a typo): an error before the model loads, not a CSV of error rows
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "nope_dir"), "--model", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "typo.csv")]) == 2
    assert "nope_dir: not found; nothing to analyse" in capsys.readouterr().err and not (tmp_path / "typo.csv").exists()
    # a folder with nothing predict reads: named (it said "no inputs given", though a folder was given)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    assert main(["predict", str(tmp_path / "notes"), "--model", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "notes.csv")]) == 2
    err = capsys.readouterr().err
    assert "no video, image or audio files in " + str(tmp_path / "notes") in err and "no inputs given" not in err


def test_an_exception_of_the_callers_own_callback_reaches_the_caller(bundle, cremad_audio):
    """A service cancelling a long file from its callback got an error row blaming the file ("unexpected error
    ...; please report it"); a helper's service found it."""
    from mmfer.predict import Predictor

    class Cancel(Exception):
        pass

    def cancel(*args):
        raise Cancel("cancelled by the caller")

    def cancel_mmfer_error(*args):  # an MmferError of the caller's is theirs too, with its cause kept
        raise MmferError("the caller's own") from KeyError("why")

    predictor = Predictor(bundle)
    for callback in ("on_segment", "progress"):
        with pytest.raises(Cancel, match="cancelled by the caller"):
            predictor.predict_file(cremad_audio[0], **{callback: cancel})
        with pytest.raises(MmferError, match="the caller's own") as raised:
            predictor.predict_file(cremad_audio[0], **{callback: cancel_mmfer_error})
        assert isinstance(raised.value.__cause__, KeyError)
    assert predictor.predict_file(cremad_audio[0]).ok  # and the predictor goes on


def test_a_full_scale_recording_resampled_is_not_called_clipped(tmp_path, bundle):
    """Resampling a 16-bit file that reaches full scale overshoots 1 (here to 1.19): that was warned as the file's
    samples "outside [-1, 1]", which a 16-bit file cannot hold."""
    import soundfile as sf

    t = np.arange(44100) / 44100
    sf.write(tmp_path / "loud.wav", np.sign(np.sin(2 * np.pi * 220 * t)) * 0.99995, 44100, subtype="PCM_16")
    pred = predict([tmp_path / "loud.wav"], model=bundle, progress=False).predictions[0]
    assert pred.ok and "clipped" not in pred.warning


def test_non_finite_audio_is_cleaned_and_a_broken_branch_is_left_out(tmp_path, bundle, cremad_audio, monkeypatch):
    """One inf sample used to turn the audio scores, and then the fused ones, into a uniform row."""
    import soundfile as sf

    audio = read_audio(cremad_audio[0])
    audio[100] = np.inf
    audio[200] = 7.0
    sf.write(tmp_path / "inf.wav", audio.astype(np.float32), 16000, subtype="FLOAT")
    pred = predict([tmp_path / "inf.wav"], model=bundle, progress=False).predictions[0]
    assert pred.ok and np.all(np.isfinite(pred.probs)) and pred.predicted
    assert "1 non-finite audio sample(s) set to 0" in pred.warning and "clipped" in pred.warning

    from mmfer.predict import Predictor

    p = Predictor(bundle)
    real = p.clip_probs_many
    monkeypatch.setattr(p, "clip_probs_many",  # the audio branch breaks
                        lambda bs, clips: {name: q * np.nan for name, q in real(bs, clips).items()})
    video = p.predict_file(Path(__file__).resolve().parent / "assets" / "cremad" / "1001_DFA_ANG_XX.flv")
    assert np.all(np.isfinite(video.probs)) and video.predicted and video.modalities == "face"
    assert "gave non-finite scores and were left out of fusion" in video.warning


def test_huge_images_are_refused_from_their_header(tmp_path, bundle):
    """An 8000x8000 PNG of a few KB would decode to 190 MB: refused before a pixel is read."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    w = h = 8000
    z = zlib.compressobj(6)
    row = z.compress(b"\0" * (w + 1))
    data = row + b"".join(z.compress(b"\0" * (w + 1)) for _ in range(h - 1)) + z.flush()
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    (tmp_path / "huge.png").write_bytes(png)
    pred = predict([tmp_path / "huge.png"], model=bundle, progress=False).predictions[0]
    assert pred.kind == "error" and "8000x8000 pixels, over the 50 megapixels" in pred.warning


def test_non_utf8_file_names_get_safe_ids_and_every_output_is_written(bundle, cremad_videos, tmp_path):
    """Issue 20, class 13: a name like b'caf\\xe9.mp3' (not UTF-8) gets the id 'café'; the CSV, frames, report
    and submission are written (no UnicodeEncodeError after all the work, no stray temporary file)."""
    import os
    import shutil

    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(cremad_videos[0], os.fsdecode(bytes(d) + b"/caf\xe9.flv"))
    (Path(os.fsdecode(bytes(d) + b"/bad\xff.avi"))).write_bytes(b"not a video" * 10)
    out = tmp_path / "out"
    result = predict([d], model=bundle, out=out / "p.csv", frames=out / "frames.csv", report=out / "r.html",
                     submission=out / "team.zip", labels_from="cremad", progress=False)
    ids = sorted(p.clip_id for p in result.predictions)
    assert ids == ["bad\xff", "café"]
    for p in ids:
        p.encode("utf-8")
    rows = read_predictions(out / "p.csv")
    assert sorted(r["clip_id"] for r in rows) == ids and any("\\xe9" in r["path"] for r in rows)
    assert (out / "frames.csv").is_file() and (out / "r.html").is_file()
    with zipfile.ZipFile(out / "team.zip") as zf:
        assert sorted(zf.namelist()) == ["bad\xff.txt", "café.txt"]
    assert sorted(os.listdir(out)) == [".p.csv.run.json", "frames.csv", "p.csv", "r.html", "team.zip"]  # nothing stray
    print(result.table())  # printable too


def test_plain_reasons_for_odd_inputs(bundle, tmp_path):
    """Issue 20, class 15: a FIFO, /dev/stdin and '-' are not 'file not found'; a corrupt wav/mp3/flac is not told
    to become mp4/avi; a one-sample wav gets no prediction and a warning instead of 'Sad 0.54'."""
    import os
    import wave

    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    rng = np.random.default_rng(0)
    (tmp_path / "corrupt.wav").write_bytes(rng.bytes(3000))
    (tmp_path / "corrupt.flac").write_bytes(b"fLaC" + rng.bytes(100))
    (tmp_path / "corrupt.mp3").write_bytes(bytes(500))
    with wave.open(str(tmp_path / "one.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((12000).to_bytes(2, "little", signed=True))
    predictor = Predictor(bundle, device="cpu")
    for path, why in ((fifo, "not a regular file"), ("-", "standard input"), ("/dev/stdin", "not a regular file")):
        p = predictor.predict_file(path)
        assert not p.ok and why in p.warning and "not found" not in p.warning, (path, p.warning)
    for name in ("corrupt.wav", "corrupt.flac", "corrupt.mp3"):
        p = predictor.predict_file(tmp_path / name)
        assert not p.ok and "mp4" not in p.warning and ("wav" in p.warning or "re-copy" in p.warning), p.warning
    one = predictor.predict_file(tmp_path / "one.wav")
    assert one.predicted == "" and "audio too short" in one.warning, (one.predicted, one.warning)
    rows = predict([fifo, "-"], model=bundle, out=tmp_path / "p.csv", progress=False)
    assert [p.kind for p in rows.predictions] == ["error", "error"]
    folder = predictor.predict_file(tmp_path)
    assert not folder.ok and "a folder: predict_file scores one file" in folder.warning, folder.warning
    with pytest.raises(MmferError, match="kind must be 'video', 'audio', 'image' or None .* got 'banana'"):
        predictor.predict_file(tmp_path / "one.wav", kind="banana")  # was "unsupported file type '.wav'"


def test_frame_rows_of_a_variable_frame_rate_video_span_it(bundle, tmp_path):
    """Issue 20, class 6: --frames face rows of a variable-frame-rate mkv (its header says 30 frames/s, its
    timestamps say 30 frames in 1 s and then one a second up to 5 s) span those 5 s, as its audio rows do
    (they spanned 1.2 s, timed by the header's rate)."""
    from mmfer.predict import frame_rows
    from predict_helpers import write_vfr_video

    audio = np.random.default_rng(0).normal(0, 0.1, 16000 * 6).astype(np.float32)
    path = write_vfr_video(tmp_path / "vfr.mkv", [*np.arange(30) / 30, *np.arange(1, 6)], size=(48, 64), audio=audio)
    pred = Predictor(bundle, device="cpu").predict_file(path, timeline=True)
    rows = frame_rows(pred)
    face = [r["time"] for r in rows if r["modality"] == "face"]
    sound = [r["time"] for r in rows if r["modality"] == "audio"]
    assert max(face) > 4.5 and max(sound) > 4.5, (max(face), max(sound))  # the last frame is shown at 5 s
    assert "truncated" not in pred.warning


def test_audio_frame_rows_of_silence_and_of_too_little_sound_have_no_probabilities(bundle, tmp_path):
    """--frames audio windows over silence (sound that starts late) or over sound too short to score carry no
    probabilities, as the file row and its segments do not (they gave the model's reading of silence)."""
    import soundfile as sf

    from mmfer.predict import frame_rows

    rng = np.random.default_rng(0)
    late = np.concatenate([np.zeros(16000 * 2), rng.normal(0, 0.1, 16000 * 2)]).astype(np.float32)
    sf.write(tmp_path / "late.wav", late, 16000)
    sf.write(tmp_path / "tiny.wav", rng.normal(0, 0.1, 800).astype(np.float32), 16000)  # 50 ms
    predictor = Predictor(bundle, device="cpu")
    rows = [r for r in frame_rows(predictor.predict_file(tmp_path / "late.wav", timeline=True))
            if r["modality"] == "audio"]
    probs = np.array([[r[e] for e in EMOTIONS] for r in rows])
    silent = np.array([r["time"] <= 1.5 for r in rows])  # windows of 1 s wholly before the sound starts at 2 s
    assert silent.any() and (~silent).any()
    assert np.isnan(probs[silent]).all() and np.isfinite(probs[~silent]).all()
    tiny = predictor.predict_file(tmp_path / "tiny.wav", timeline=True)
    assert not tiny.predicted
    assert all(np.isnan(r[e]) for r in frame_rows(tiny) for e in EMOTIONS)


def test_a_video_named_as_a_sound_file_says_its_faces_are_not_analysed(bundle, tmp_path, cremad_videos,
                                                                       cremad_audio):
    """An .flv renamed .wav is scored by its sound (its extension says so), now with a word that its picture was
    not looked at (the reverse, a sound file named .avi, was already said); a plain mp3 says nothing of it."""
    import shutil

    shutil.copy(cremad_videos[0], tmp_path / "video.wav")
    predictor = Predictor(bundle, device="cpu")
    pred = predictor.predict_file(tmp_path / "video.wav")
    assert pred.ok and pred.modalities == "audio" and "holds a video stream, but its .wav name" in pred.warning
    assert "video stream" not in predictor.predict_file(cremad_audio[0]).warning


def test_a_video_too_small_for_a_face_is_scored_by_its_sound(bundle, tmp_path):
    """Frames of 16x12 pixels cannot hold a face; the file's speech can still be heard (it was an error row)."""
    from predict_helpers import write_vfr_video

    audio = np.random.default_rng(0).normal(0, 0.1, 16000 * 2).astype(np.float32)
    path = write_vfr_video(tmp_path / "tiny_frames.mkv", np.arange(40) / 20, size=(12, 16), audio=audio)
    pred = Predictor(bundle, device="cpu").predict_file(path)
    assert pred.ok and pred.predicted and pred.modalities == "audio", pred.warning
    assert "frames are 16x12 pixels, too small to hold a face" in pred.warning and "sound alone" in pred.warning
    silent = write_vfr_video(tmp_path / "tiny_silent.mkv", np.arange(40) / 20, size=(12, 16))
    row = Predictor(bundle, device="cpu").predict_file(silent)  # no sound either: the picture's error row
    assert not row.ok and "too small to hold a face" in row.warning


def test_an_audio_only_video_file_is_scored_as_sound_and_blank_tight_images_are_refused(bundle, tmp_path,
                                                                                          cremad_audio):
    """A voice memo saved as .mp4 (no video stream) is scored by its sound, saying so, as the same sound in a
    .wav is; 8-kHz sound is scored with a note; a tight image (taken as the face without a detector) that is a dot
    or one flat colour is no face."""
    import av
    import soundfile as sf
    from predict_helpers import _mux_audio

    audio = read_audio(cremad_audio[0])
    with av.open(str(tmp_path / "memo.mp4"), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        _mux_audio(container, stream, audio, 16000)
    sf.write(tmp_path / "memo.wav", read_audio(tmp_path / "memo.mp4"), 16000)  # the very samples the .mp4 decodes to
    cv2.imwrite(str(tmp_path / "dot.png"), np.full((1, 1), 128, np.uint8))
    cv2.imwrite(str(tmp_path / "card.png"), np.full((64, 64), 128, np.uint8))
    cv2.imwrite(str(tmp_path / "wall.png"), np.full((480, 640, 3), (40, 90, 200), np.uint8))  # a photo-sized one
    predictor = Predictor(bundle, device="cpu")
    memo, wav = predictor.predict_file(tmp_path / "memo.mp4"), predictor.predict_file(tmp_path / "memo.wav")
    assert memo.ok and memo.modalities == "audio" and "no video stream: scored as a sound file" in memo.warning
    np.testing.assert_allclose(memo.probs, wav.probs, atol=1e-5)
    # its segments too, as predict_file scores it (segments() raised NoVideoStream; found by a helper), unless the
    # caller asked for the picture
    memo_segments, wav_segments = list(predictor.segments(tmp_path / "memo.mp4")), list(predictor.segments(tmp_path / "memo.wav"))
    assert [s.modalities for s in memo_segments] == [s.modalities for s in wav_segments] == ["audio"]
    np.testing.assert_allclose(memo_segments[0].probs, wav_segments[0].probs, atol=1e-5)
    with pytest.raises(MmferError, match="no video stream"):
        list(predictor.segments(tmp_path / "memo.mp4", audio_only=False))
    # telephone-band sound: scored, and the row says what the recording lacks; 16 kHz sound says nothing
    sf.write(tmp_path / "phone.wav", read_audio(tmp_path / "memo.wav", sample_rate=8000), 8000)
    phone = predictor.predict_file(tmp_path / "phone.wav")
    assert phone.ok and "sound recorded at 8000 Hz" in phone.warning and "nothing above 4000 Hz" in phone.warning
    assert "recorded at" not in wav.warning
    # two sound tracks (a dubbed film): the first is heard, and the row says the second was not
    with av.open(str(tmp_path / "dubbed.mkv"), "w") as container:
        tracks = [container.add_stream("aac", rate=16000) for _ in range(2)]
        for track in tracks:
            track.layout = "mono"
        for track, sound in zip(tracks, (audio, np.zeros_like(audio))):
            _mux_audio(container, track, sound, 16000)
    dubbed = predictor.predict_file(tmp_path / "dubbed.mkv")
    assert dubbed.ok and "2 sound tracks: only the first is analysed" in dubbed.warning, dubbed.warning
    np.testing.assert_allclose(dubbed.probs, memo.probs, atol=1e-3)
    for name, why in (("dot.png", "image too small to hold a face (1x1"), ("card.png", "blank image (64x64"),
                      ("wall.png", "blank image (640x480")):
        p = predictor.predict_file(tmp_path / name)
        assert not p.ok and why in p.warning, (name, p.warning)


def test_a_copy_cut_off_says_so_where_its_durations_do_not(bundle, tmp_path, cremad_audio):
    """A copy cut off is named by what its bytes declare: an AVI by its header's size (its durations need not
    tell: tests/data/test_preprocess.py has one that decodes more frames than it declares), a WAV, which no
    check caught before, likewise; the whole file's row says nothing of it."""
    import av
    import soundfile as sf

    whole_avi = tmp_path / "whole.avi"  # MJPEG frames and PCM sound: neither decoder notices the cut
    with av.open(str(whole_avi), "w") as container:
        video, sound = container.add_stream("mjpeg", rate=8), container.add_stream("pcm_s16le", rate=16000)
        video.height, video.width, video.pix_fmt = 96, 128, "yuvj420p"
        sound.layout = "mono"
        for img in np.random.default_rng(0).integers(0, 255, (24, 96, 128, 3), dtype=np.uint8):
            container.mux(video.encode(av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuvj420p")))
        container.mux(video.encode())
        samples = (read_audio(cremad_audio[0])[:48000] * 32767).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 16000
        container.mux(sound.encode(frame))
        container.mux(sound.encode())
    sf.write(tmp_path / "whole.wav", read_audio(cremad_audio[0]), 16000)
    predictor = Predictor(bundle, device="cpu")
    for whole, says in ((whole_avi, "its AVI header declares"), (tmp_path / "whole.wav", "its WAVE header declares")):
        cut = tmp_path / f"cut{whole.suffix}"
        data = whole.read_bytes()
        cut.write_bytes(data[: int(len(data) * 0.7)])
        full, short = predictor.predict_file(whole), predictor.predict_file(cut)
        assert full.ok and "truncated" not in full.warning, full.warning
        assert short.ok and "file looks truncated" in short.warning and says in short.warning, short.warning
        assert short.warning.count("file looks truncated") == 1


def test_the_progress_bar_of_a_file_never_passes_100_percent(bundle, tmp_path, cremad_videos, capsys, monkeypatch):
    """A file that runs past the length its header declares moves the bar's end (tqdm printed '102%' and a
    'clamping frac' warning on the README's own example)."""
    import re

    monkeypatch.setenv("MMFER_PROGRESS", "1")  # bars though stderr is captured
    predict(cremad_videos[:2], model=bundle, out=tmp_path / "p.csv", progress=True)
    err = capsys.readouterr().err
    shown = [int(p) for p in re.findall(r"(\d+)%\|", err)]
    assert shown and max(shown) <= 100 and "clamping" not in err, err[-500:]


def test_a_name_with_spaces_at_its_ends_keeps_its_prediction_in_every_output(bundle, tmp_path, cremad_audio):
    """' happy .mp3': the score readers strip the id's spaces, so the submission filled it with the class prior
    and evaluate --root counted it missing; its id is now '_happy_' everywhere."""
    import shutil
    import zipfile

    from mmfer.metrics import evaluate_file

    (tmp_path / "Happy").mkdir()
    (tmp_path / "Sad").mkdir()
    shutil.copy(cremad_audio[3], tmp_path / "Happy" / " happy .mp3")
    shutil.copy(cremad_audio[5], tmp_path / "Sad" / "a.mp3")
    result = predict(tmp_path, model=bundle, out=tmp_path / "p.csv", submission=tmp_path / "s.zip", progress=False)
    row = next(p for p in result.predictions if "happy" in p.path)
    assert row.clip_id == "_happy_" and row.predicted
    with zipfile.ZipFile(tmp_path / "s.zip") as z:
        assert z.read("_happy_.txt").decode().strip() == row.predicted
    m = evaluate_file(tmp_path / "p.csv", labels_from="folder", root=tmp_path)
    assert m["n"] == 2 and not m["missing"]


def test_labels_from_folder_says_which_folders_give_no_label(bundle, tmp_path, cremad_audio, caplog):
    """A misspelt emotion folder (``Nuetral``) leaves its rows unlabelled: predict says so, naming it."""
    import shutil

    for folder, i in (("Sad", 5), ("Nuetral", 4)):
        (tmp_path / folder).mkdir()
        shutil.copy(cremad_audio[i], tmp_path / folder / "a.mp3")
    with caplog.at_level("WARNING"):
        result = predict(tmp_path, model=bundle, labels_from="folder", progress=False)
    assert sorted(p.truth or "" for p in result.predictions) == ["", "Sad"] == sorted(t or "" for t in result.truths)
    assert "1 file(s) give no label" in caplog.text and "Nuetral" in caplog.text
    assert [r["label"] for r in result.rows()] == result.truths  # a truth known: the label column, as in the CSV


def test_a_folder_scan_takes_camera_formats_and_counts_what_it_leaves_out(tmp_path, cremad_videos, cremad_audio,
                                                                          caplog):
    """Phones and camcorders write .m4v, .3gp, .mts; speech comes as .opus: they are analysed. Files of no known
    kind are counted by extension in a warning, not skipped without a word."""
    import shutil

    from mmfer.predict import find_inputs

    shutil.copy(cremad_videos[0], tmp_path / "phone.m4v")
    shutil.copy(cremad_videos[1], tmp_path / "cam.MTS")
    shutil.copy(cremad_audio[0], tmp_path / "voice.opus")
    cv2.imwrite(str(tmp_path / "face.webp"), np.full((48, 48, 3), 100, np.uint8))  # a browser's or phone's image
    for name in ("notes.txt", "more.txt", "app.ts"):
        (tmp_path / name).write_text("x")
    found = find_inputs([tmp_path])
    assert sorted((p.name, k) for p, k in found) == [("cam.MTS", "video"), ("face.webp", "image"),
                                                     ("phone.m4v", "video"), ("voice.opus", "audio")]
    assert "3 file(s) of other kinds left out (2 .txt, 1 .ts)" in caplog.text


def test_a_file_given_twice_or_reached_through_a_link_of_its_name_is_one_input(tmp_path, cremad_audio, caplog):
    """The same file named twice, or linked to from a folder, was analysed (and counted) once per path."""
    import shutil

    from mmfer.predict import find_inputs

    real = tmp_path / "real" / "v.mp3"
    real.parent.mkdir()
    shutil.copy(cremad_audio[0], real)
    shutil.copy(cremad_audio[1], tmp_path / "real" / "w.mp3")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "v.mp3").symlink_to(real)
    (tmp_path / "x" / "other_name.mp3").symlink_to(real)  # another clip id: kept (a submission needs its row)
    found = find_inputs([real, tmp_path / "real" / ".." / "real" / "v.mp3", tmp_path / "real", tmp_path / "x"])
    assert [p for p, _ in found] == [real, tmp_path / "real" / "w.mp3", tmp_path / "x" / "other_name.mp3"]
    assert "3 input(s) are files given already" in caplog.text and f"{tmp_path / 'x' / 'v.mp3'} is {real}" in caplog.text


def test_a_span_after_the_picture_ends_has_no_face_ratio(bundle, tmp_path):
    """Sound that outlasts the picture, analysed from --start after the last frame: no frame was analysed, so the
    file row's face_ratio is empty, as its segment's is (it said 0.000, "no frame shows a face")."""
    from predict_helpers import write_vfr_video

    audio = np.random.default_rng(0).normal(0, 0.1, 16000 * 5).astype(np.float32)
    path = write_vfr_video(tmp_path / "longer_sound.mkv", np.arange(16) / 8, size=(48, 64), audio=audio)
    pred = Predictor(bundle, device="cpu", start=3.0).predict_file(path)
    assert pred.ok and pred.modalities == "audio", pred.warning
    assert pred.face_ratio is None and all(s.face_ratio is None for s in pred.segments)
    assert Predictor(bundle, device="cpu").predict_file(path).face_ratio == 0.0  # frames, none with a face


def test_a_video_whose_sound_is_too_short_says_so(bundle, tmp_path, cremad_videos):
    """A 62-ms sound track beside one frame was dropped without a word (found by a helper)."""
    import av

    frames, _ = read_frames(cremad_videos[3], fps=8)
    path = tmp_path / "blip.mkv"
    with av.open(str(path), "w") as c:  # PCM: AAC would pad 1,000 samples past 0.1 s
        v = c.add_stream("mpeg4", rate=8)
        v.height, v.width = frames.shape[1:3]
        v.pix_fmt = "yuv420p"
        a = c.add_stream("pcm_s16le", rate=16000)
        a.layout = "mono"
        for pk in [*v.encode(av.VideoFrame.from_ndarray(frames[0], format="rgb24")), *v.encode()]:
            c.mux(pk)
        sound = av.AudioFrame.from_ndarray((np.random.default_rng(0).normal(0, 3000, (1, 1000))).astype(np.int16),
                                           format="s16", layout="mono")
        sound.sample_rate = 16000
        for pk in [*a.encode(sound), *a.encode()]:
            c.mux(pk)
    p = Predictor(bundle, device="cpu").predict_file(path)
    assert p.modalities == "face" and "sound too short to classify" in p.warning, p.warning


def test_a_dc_offset_changes_no_prediction(bundle, tmp_path, cremad_audio):
    """A cheap sound card's DC offset (+0.05) turned an utterance's Surprise into Disgust (found by a helper)."""
    import soundfile as sf

    voice = read_audio(cremad_audio[0])
    sf.write(tmp_path / "plain.wav", voice, 16000, subtype="FLOAT")
    sf.write(tmp_path / "offset.wav", voice + np.float32(0.05), 16000, subtype="FLOAT")
    p = Predictor(bundle, device="cpu")
    plain, offset = p.predict_file(tmp_path / "plain.wav"), p.predict_file(tmp_path / "offset.wav")
    assert plain.modalities == offset.modalities == "audio"
    np.testing.assert_allclose(offset.probs, plain.probs, atol=1e-5)


def test_a_duration_shorter_than_a_frame_still_reads_one(bundle, cremad_videos):
    """--duration 0.05 at 8 frames/s rounded to 0 frames, which read as "no video frames could be decoded"."""
    p = Predictor(bundle, duration=0.05).predict_file(cremad_videos[0])
    assert p.ok and "only one video frame analysed" in p.warning and "could be decoded" not in p.warning, p.warning


def test_the_last_segment_ends_where_the_file_does(bundle, tmp_path):
    """A one-frame 30-fps clip lasts 1/30 s: its segment ended at 1/8 s, the analysis rate's frame length."""
    from predict_helpers import write_video

    one = write_video(tmp_path / "one.mp4", np.random.default_rng(0).integers(0, 255, (1, 48, 64, 3)), fps=30)
    p = Predictor(bundle).predict_file(one)
    assert p.segments[-1].end == pytest.approx(1 / 30, abs=0.005), p.segments


def test_inputs_sharing_a_name_are_told_apart_in_table_plots_and_report(bundle, tmp_path, cremad_videos):
    """long.mp4 beside long.mkv (one clip id): the table shows their paths, the plots are long.png and
    long.mkv.png, and the report's rows and timelines name each file."""
    import shutil

    a, b = tmp_path / "long.flv", tmp_path / "long.mkv"
    shutil.copy(cremad_videos[0], a)
    shutil.copy(cremad_videos[1], b)
    result = predict([a, b], model=bundle, plots=tmp_path / "plots", report=tmp_path / "r.html", progress=False)
    table = result.table()
    assert table.splitlines()[0].startswith("path") and str(a) in table and str(b) in table
    assert sorted(p.name for p in (tmp_path / "plots").glob("*.png")) == ["long.mkv.png", "long.png"]
    page = (tmp_path / "r.html").read_text()
    assert page.count(f"<figcaption>{b}</figcaption>") == 1 and page.count(f"<td>{a}</td>") == 1


def test_plots_never_replace_an_input(bundle, tmp_path, cremad_videos):
    """A helper's interview.png (the video's thumbnail) was replaced by interview.mp4's plot and then scored as
    that plot; --plots inside an input folder fed the next run its plots."""
    import shutil

    from PIL import Image

    folder = tmp_path / "thumb"
    folder.mkdir()
    shutil.copy(cremad_videos[0], folder / "interview.flv")
    Image.new("RGB", (64, 48), (90, 120, 150)).save(folder / "interview.png")
    before = (folder / "interview.png").read_bytes()
    with pytest.raises(MmferError, match=r"--plots .*thumb: is inside the input folder .*thumb"):
        predict([folder], model=bundle, plots=folder, progress=False)
    with pytest.raises(MmferError, match=r"is inside the input folder"):
        predict([folder], model=bundle, plots=folder / "plots", progress=False)
    files = [folder / "interview.flv", folder / "interview.png"]  # the files given one by one: named apart
    result = predict(files, model=bundle, plots=folder, progress=False)
    assert (folder / "interview.png").read_bytes() == before
    assert [p.name for p in result.plots] == ["interview.flv.png"]
    assert result.predictions[1].path == str(folder / "interview.png")


def test_a_submission_of_a_whole_afew_root_is_refused_before_any_work(bundle, tmp_path, cremad_videos):
    import shutil

    root = tmp_path / "AFEW"
    for split in ("Train/Angry", "Val/Angry", "Test"):
        (root / split).mkdir(parents=True)
        shutil.copy(cremad_videos[0], root / split / f"{split.replace('/', '_')}.flv")
    with pytest.raises(MmferError, match=r"holds Train/ and Val/, whose clips are no Test clips; give its Test folder"):
        predict([root], model=bundle, submission=tmp_path / "team.zip", progress=False)
    assert not (tmp_path / "team.zip").exists()
    done = predict([root / "Test"], model=bundle, submission=tmp_path / "team.zip", progress=False)
    assert done.submission["clips"] == 1


def test_a_picture_that_comes_in_late_is_placed_on_the_files_clock(bundle, tmp_path, cremad_videos):
    """An mp4 whose picture starts 1 s after its sound: the frames are timed from 1 s (they were moved up to 0,
    seconds away from the speech they go with), and the sound before them is analysed alone."""
    import fractions

    import av

    from mmfer.data.video import probe_video, read_frames

    frames, _ = read_frames(cremad_videos[0], fps=8)
    path = tmp_path / "late_picture.mp4"
    c = av.open(str(path), "w")
    v = c.add_stream("mpeg4", rate=8)
    v.height, v.width, v.pix_fmt = *frames.shape[1:3], "yuv420p"
    a = c.add_stream("aac", rate=16000)
    a.layout = "mono"
    for i, img in enumerate(frames[:16]):  # 2 s of picture from 1 s
        f = av.VideoFrame.from_ndarray(img, format="rgb24")
        f.pts, f.time_base = 8 + i, fractions.Fraction(1, 8)
        for pk in v.encode(f):
            c.mux(pk)
    for pk in v.encode():
        c.mux(pk)
    tone = (0.3 * np.sin(np.arange(48000) * 0.07)).astype(np.float32)  # 3 s of sound from 0 s
    for s in range(0, 48000, 1024):
        f = av.AudioFrame.from_ndarray(tone[None, s:s + 1024].copy(), format="fltp", layout="mono")
        f.sample_rate, f.pts, f.time_base = 16000, s, fractions.Fraction(1, 16000)
        for pk in a.encode(f):
            c.mux(pk)
    for pk in a.encode():
        c.mux(pk)
    c.close()
    assert probe_video(path).start_offset == pytest.approx(1.0, abs=0.01)
    p = Predictor(bundle).predict_file(path, timeline=True)
    assert p.ok and "the picture starts at 1.0 s" in p.warning, p.warning
    times = p.timeline["frame_times"]
    assert times[0] == pytest.approx(1.0, abs=0.01) and times[-1] == pytest.approx(2.875, abs=0.01)
    assert p.segments[0].start == 0.0 and p.segments[-1].end == pytest.approx(3.0, abs=0.1)
    # --duration counts from --start, not from the picture's start (it took 1.5 s of picture from 1 s)
    span = Predictor(bundle, duration=1.5).predict_file(path, timeline=True)
    assert span.timeline["frame_times"][-1] == pytest.approx(1.375) and span.segments[-1].end == pytest.approx(1.5)
    before = Predictor(bundle, duration=0.5).predict_file(path, timeline=True)
    assert before.ok and before.modalities == "audio" and "frame_times" not in before.timeline
    assert before.warning == "the picture starts at 1.0 s, after the span analysed: sound only", before.warning


def test_face_images_cut_short_transparent_flat_or_empty(bundle, tmp_path):
    """A JPEG cut short is scored with 'file looks truncated' (OpenCV greys the rest and says so only on stderr);
    what lies under transparent pixels does not change the face read (shown over white); a card of one flat
    colour is blank whatever the colour; an empty file says it is empty."""
    assets = Path(__file__).resolve().parent / "assets" / "cremad_faces"
    face = cv2.imread(str(sorted(assets.glob("*.png"))[0]))
    face = cv2.resize(face, (64, 64))
    cv2.imwrite(str(tmp_path / "whole.jpg"), face)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: int(len(data) * 0.8)])
    rgba = np.dstack([face, np.full(face.shape[:2], 255, np.uint8)])
    rgba[:, :12, 3] = 0  # a transparent band on the left
    for name, under in (("under_black", 0), ("under_white", 255)):
        img = rgba.copy()
        img[:, :12, :3] = under
        cv2.imwrite(str(tmp_path / f"{name}.png"), img)
    cv2.imwrite(str(tmp_path / "red.png"), np.tile(np.array([30, 30, 200], np.uint8), (48, 48, 1)))
    (tmp_path / "empty.jpg").write_bytes(b"")
    p = Predictor(bundle)
    whole, cut = p.predict_file(tmp_path / "whole.jpg"), p.predict_file(tmp_path / "cut.jpg")
    assert whole.ok and whole.warning == "" and cut.ok and "file looks truncated: its JPEG image data has no end marker" \
        in cut.warning
    black, white = p.predict_file(tmp_path / "under_black.png"), p.predict_file(tmp_path / "under_white.png")
    np.testing.assert_allclose(black.probs, white.probs, atol=1e-6)
    assert not p.predict_file(tmp_path / "red.png").ok and "blank image" in p.predict_file(tmp_path / "red.png").warning
    assert "file is empty (0 bytes)" in p.predict_file(tmp_path / "empty.jpg").warning


def test_segments_tell_sound_files_by_extension_and_one_pass_gives_the_row(bundle, cremad_audio, cremad_videos,
                                                                            extra_inputs):
    """``Predictor.segments`` streams a sound file as ``predict_file`` does (it had to be told ``audio_only``), an
    image has none, and ``analyse`` gives the segments and the file's row from one pass."""
    from mmfer.predict import Predictor

    p = Predictor(bundle)
    segs = list(p.segments(cremad_audio[0]))
    row = p.predict_file(cremad_audio[0])
    assert segs and [s.start for s in segs] == [s.start for s in row.segments]
    np.testing.assert_allclose(np.stack([s.probs for s in segs]), np.stack([s.probs for s in row.segments]))
    with pytest.raises(MmferError, match="an image has no segments"):
        p.segments(extra_inputs / "images" / "frame.jpg")  # at the call, not at the first segment
    analysis = p.analyse(cremad_videos[0])
    streamed = list(analysis)
    once = analysis.prediction
    np.testing.assert_allclose(once.probs, p.predict_file(cremad_videos[0]).probs, atol=1e-6)
    assert len(streamed) == len(once.segments)


def test_predict_takes_a_loaded_predictor_and_leaves_its_settings(bundle, cremad_audio):
    """predict(model=Predictor) loads nothing again, gives the rows a fresh load gives, and keeps the caller's
    Predictor as it was (this call's span is its own)."""
    from mmfer.predict import Predictor

    p = Predictor(bundle)
    fresh = predict([cremad_audio[0]], model=bundle, progress=False).predictions[0]
    again = predict([cremad_audio[0]], model=p, progress=False)
    np.testing.assert_allclose(again.predictions[0].probs, fresh.probs, atol=1e-6)
    short = predict([cremad_audio[0]], model=p, duration=1.0, progress=False).predictions[0]
    short_fresh = predict([cremad_audio[0]], model=bundle, duration=1.0, progress=False).predictions[0]
    np.testing.assert_allclose(short.probs, short_fresh.probs, atol=1e-6)  # this call's span
    assert not np.allclose(short.probs, fresh.probs, atol=1e-4) and p.duration is None  # the caller's: all of it
    for option in ({"frame_pooling": "mean"}, {"speech_check": False}):
        with pytest.raises(MmferError, match="a loaded Predictor keeps its frame pooling, face backend, device and speech check"):
            predict([cremad_audio[0]], model=p, progress=False, **option)


def test_predict_guards_earlier_work(bundle, tmp_path, cremad_audio, monkeypatch, caplog):
    """An --out that is an input is refused before any work (the video became a CSV); an existing --out without
    --resume is said before the run replaces it; --resume finds rows written under another spelling of the same
    paths (they were dropped); a save that fails mid-run (a full disk) is said and tried again, the run goes on."""
    import shutil

    import mmfer.inference.run as run

    folder = tmp_path / "in"
    folder.mkdir()
    for p in cremad_audio[:2]:
        shutil.copy(p, folder / p.name)
    first = folder / cremad_audio[0].name
    before = first.read_bytes()
    with pytest.raises(MmferError, match=r"--out .*is one of this command's inputs"):
        predict([folder], model=bundle, out=first, progress=False)
    assert first.read_bytes() == before
    out = tmp_path / "p.csv"
    monkeypatch.chdir(tmp_path)
    predict(["in"], model=bundle, out=out, progress=False)  # relative paths in the CSV
    with caplog.at_level("WARNING"):
        predict(["in"], model=bundle, out=tmp_path / "q.csv", progress=False)
        assert "exists: it is replaced" not in caplog.text
        shutil.copy(out, tmp_path / "q.csv")
        predict(["in"], model=bundle, out=tmp_path / "q.csv", progress=False)
    assert "q.csv exists: it is replaced by this run's rows (add --resume" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"), pytest.raises(MmferError):  # a model that does not load replaces nothing,
        predict(["in"], model=tmp_path / "no_model", out=tmp_path / "q.csv", progress=False)  # and says nothing of it
    assert "exists: it is replaced" not in caplog.text
    analysed = []
    real = Predictor.predict_file
    monkeypatch.setattr(Predictor, "predict_file", lambda self, path, *a, **k: analysed.append(path)
                        or real(self, path, *a, **k))
    predict([str(folder)], model=bundle, out=out, progress=False, resume=True)  # the same files, absolute
    assert analysed == []
    before = out.read_text()
    with pytest.raises(MmferError, match=r"--resume: 1 row\(s\) of .* not among these inputs"):
        predict([str(folder / cremad_audio[1].name)], model=bundle, out=out, progress=False, resume=True)
    assert out.read_text() == before  # refused before any work: the other file's row is not lost
    # a save that fails (disk full) mid-run: said, the run goes on, the last write keeps every row
    real_write, fails = run.write_predictions, []

    def full_once(path, *a, **k):
        if not fails:
            fails.append(path)
            raise OSError(28, "No space left on device")
        return real_write(path, *a, **k)

    monkeypatch.setattr(run, "SAVE_EVERY_S", 0.0)
    monkeypatch.setattr(run, "write_predictions", full_once)
    with caplog.at_level("WARNING"):
        result = predict([folder], model=bundle, out=tmp_path / "r.csv", progress=False)
    assert fails and "could not save the rows so far (No space left on device)" in caplog.text
    assert len(read_predictions(tmp_path / "r.csv")) == len(result.predictions) == 2
    # the disk still full at the end: the rows are not thrown away with the error, and it says where they are

    def out_full(path, *a, **k):
        if Path(path).parent == tmp_path:
            raise OSError(28, "No space left on device")
        return real_write(path, *a, **k)

    import tempfile

    monkeypatch.setattr(run, "write_predictions", out_full)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "spare"))
    (tmp_path / "spare").mkdir()
    with caplog.at_level("WARNING"), pytest.raises(OSError, match="No space left"):
        predict([folder], model=bundle, out=tmp_path / "s.csv", progress=False)
    spare = list((tmp_path / "spare").glob("mmfer-*/s.csv"))
    assert len(spare) == 1 and len(read_predictions(spare[0])) == 2
    assert spare[0].parent.stat().st_mode & 0o077 == 0  # this user's alone
    assert f"its 2 row(s) are in {spare[0]}; make room, move that file to" in caplog.text


def test_face_backend_replaces_the_models_detector_and_is_recorded(bundle, tmp_path, cremad_videos, caplog):
    """A user's own detector (or another of mmfer's) in predict: `--face-backend`, said as a change of what the
    face branches see, recorded beside --out; a mistyped name is said before any work."""
    from mmfer.inference.resume import read_record

    with pytest.raises(MmferError, match="unknown face backend 'hog'"):
        predict([cremad_videos[0]], model=bundle, out=tmp_path / "x.csv", face_backend="hog", progress=False)
    assert not (tmp_path / "x.csv").exists()
    own = predict([cremad_videos[0]], model=bundle, progress=False).predictions[0]
    with caplog.at_level(logging.WARNING):
        other = predict([cremad_videos[0]], model=bundle, out=tmp_path / "p.csv", face_backend="NONE",
                        frames=tmp_path / "f.csv", progress=False).predictions[0]
    assert "face backend none instead of the model's own dlib" in caplog.text
    assert own.face_ratio > 0 and other.face_ratio == 1.0  # the whole frame is the face
    boxes = [(float(r["x0"]), float(r["x1"])) for r in csv.DictReader(open(tmp_path / "f.csv"))
             if r["modality"] == "face" and r["x0"]]
    assert boxes and all(x1 - x0 >= 460 for x0, x1 in boxes)  # "none": about the whole 480x360 frame
    assert read_record(tmp_path / "p.csv")["settings"]["face_backend"] == "none"
    # the model's own named: the same run as without the option, from the command line or a Predictor
    predict([cremad_videos[0]], model=bundle, out=tmp_path / "q.csv", face_backend="dlib", progress=False)
    predict([cremad_videos[0]], model=Predictor(bundle, face_backend="DLIB"), out=tmp_path / "r.csv", progress=False)
    assert "face_backend" not in read_record(tmp_path / "q.csv")["settings"]
    assert "face_backend" not in read_record(tmp_path / "r.csv")["settings"]
    with pytest.raises(MmferError, match="a loaded Predictor keeps its frame pooling, face backend"):
        predict([cremad_videos[0]], model=Predictor(bundle), face_backend="none", progress=False)
