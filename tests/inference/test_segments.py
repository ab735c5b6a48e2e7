"""Issue 21: segments, long streams, sharding and merging, interruption."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from mmfer.errors import MmferError
from mmfer.inference.merge import merge_csvs
from mmfer.inference.segments import (
    SEGMENT_COLUMNS, Segment, SegmentSettings, SegmentWriter, main_track, next_cut, read_segments,
    summarise,
)
from mmfer.labels import EMOTIONS
from predict_helpers import standin_bundle, write_video


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return standin_bundle(tmp_path_factory.mktemp("standin"))


def _seg(start, end, probs=None, modalities="face", track="1"):
    p = np.full(7, 1 / 7) if probs is None else np.asarray(probs, float)
    return Segment(path="v.mp4", clip_id="v", start=start, end=end, probs=p, face_ratio=1.0, modalities=modalities,
                   track=track)


def test_settings_are_checked():
    with pytest.raises(MmferError, match="--segment-seconds"):
        SegmentSettings(seconds=0.1)
    with pytest.raises(MmferError, match="--segment-by 'words'"):
        SegmentSettings(by="words")


def test_speech_aware_cuts_move_to_the_pause():
    """A pause at 4.6 s: the fixed cut stays at 4 s, the speech-aware one moves into the pause (within a quarter
    of a window); without sound it stays at 4 s."""
    sr = 16000
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.3, 10 * sr).astype(np.float32)
    audio[int(4.55 * sr):int(4.65 * sr)] = 0.0
    fixed, speech = SegmentSettings(), SegmentSettings(by="speech")
    assert next_cut(0.0, fixed, audio=audio) == 4.0
    assert next_cut(0.0, speech, audio=audio) == pytest.approx(4.6, abs=0.03)
    assert next_cut(0.0, speech, audio=None) == 4.0
    # the buffer may start later than 0 (the sound before the segment is dropped as the stream goes)
    assert next_cut(4.6, speech, audio=audio[4 * sr:], audio_start=4.0) == pytest.approx(8.6, abs=1.0)


def test_summary_is_the_length_weighted_mean_of_seen_segments():
    a, b = np.eye(7)[0] * 0.4 + 0.6 / 7, np.eye(7)[3] * 0.4 + 0.6 / 7
    segs = [_seg(0, 4, a), _seg(4, 5, b), _seg(5, 9, modalities="")]  # the last saw nothing
    np.testing.assert_allclose(summarise(segs), (4 * a + 1 * b) / 5)
    assert summarise([_seg(0, 4, modalities="")]) is None
    assert segs[2].predicted == "" and segs[0].predicted == "Angry"
    assert main_track(np.array([0, 2, 2, 1, 2, 0])) == "2;1" and main_track(np.zeros(3)) == ""


def test_writer_keeps_whole_videos_when_interrupted(tmp_path):
    w = SegmentWriter(tmp_path / "s.csv")
    w.add(_seg(0, 4))
    w.end_video()
    w.add(_seg(0, 4))  # a second video, cut short
    out = w.close(keep_partial=False)
    rows = read_segments(out)
    assert len(rows) == 1 and list(rows[0]) == list(SEGMENT_COLUMNS)
    assert not list(tmp_path.glob(".*tmp*"))


def _write_csv(path: Path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_merge_sorts_dedups_and_refuses_conflicts(tmp_path):
    head = list(SEGMENT_COLUMNS)
    row = lambda path, start, top="Happy": [path, Path(path).stem, start, "4.000", top, *["0.1"] * 7, "1.000", "face", "1"]  # noqa: E731
    a = _write_csv(tmp_path / "a.csv", head, [row("b.mp4", "0.000"), row("b.mp4", "4.000")])
    b = _write_csv(tmp_path / "b.csv", head, [row("a-c/x.mp4", "0.000"), row("a/b.mp4", "8.000"),
                                              row("a/b.mp4", "12.000"), row("b.mp4", "0.000")])
    done = merge_csvs([a, b], tmp_path / "all.csv")
    rows = read_segments(tmp_path / "all.csv")
    # files in the order a folder run lists them (a/b.mp4 before a-c/x.mp4), each file's rows as written
    assert done["rows"] == 5 and [(r["path"], r["start"]) for r in rows] == [
        ("a/b.mp4", "8.000"), ("a/b.mp4", "12.000"), ("a-c/x.mp4", "0.000"), ("b.mp4", "0.000"), ("b.mp4", "4.000")]
    bad = _write_csv(tmp_path / "bad.csv", head, [row("b.mp4", "0.000", top="Sad")])
    with pytest.raises(MmferError, match="appears in two inputs with different values"):
        merge_csvs([a, bad], tmp_path / "x.csv")
    scores = _write_csv(tmp_path / "scores_Val.csv", ["clip_id", "label", *EMOTIONS], [["a", "Sad", *["0.1"] * 7]])
    with pytest.raises(MmferError, match="no path column"):
        merge_csvs([scores], tmp_path / "z.csv")
    other = _write_csv(tmp_path / "other.csv", ["path", "clip_id", "predicted"], [["a", "a", "Sad"]])
    with pytest.raises(MmferError, match="columns differ"):
        merge_csvs([a, other], tmp_path / "y.csv")
    labelled = _write_csv(tmp_path / "lab.csv", ["path", "clip_id", "label", "predicted"], [["a", "a", "Sad", "Sad"]])
    plain = _write_csv(tmp_path / "plain.csv", ["path", "clip_id", "predicted"], [["b", "b", "Sad"]])
    with pytest.raises(MmferError, match="lacks the label column of .*same --labels-from"):
        merge_csvs([labelled, plain], tmp_path / "w.csv")
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "y.csv").exists()


def test_shards_split_a_folder_and_merge_back(tmp_path, bundle, cremad_videos, cremad_audio):
    """predict --shard i/n over the same inputs: disjoint shards that cover them all, by preprocess's rule; the
    merged predictions and segments equal one unsharded run's."""
    from mmfer.cli import main
    from mmfer.data.preprocess import shard_of
    from mmfer.predict import find_inputs, read_predictions, shard_inputs

    inputs = [*cremad_videos[:3], *cremad_audio[:3]]
    found = find_inputs(inputs)
    parts = [shard_inputs(found, f"{i}/3") for i in range(3)]
    assert sorted(p for part in parts for p, _ in part) == sorted(p for p, _ in found)
    assert all(shard_of("Test", p.stem, 3) == i for i, part in enumerate(parts) for p, _ in part)
    for i in range(2):
        assert main(["predict", *map(str, inputs), "--model", str(bundle), "--shard", f"{i}/2", "--quiet",
                     "--no-progress", "--out", str(tmp_path / f"p{i}.csv"), "--segments", str(tmp_path / f"s{i}.csv"),
                     "--frames", str(tmp_path / f"f{i}.csv")]) == 0
    assert main(["predict", *map(str, inputs), "--model", str(bundle), "--quiet", "--no-progress",
                 "--out", str(tmp_path / "p.csv"), "--segments", str(tmp_path / "s.csv"),
                 "--frames", str(tmp_path / "f.csv")]) == 0
    for kind in ("p", "s", "f"):
        assert main(["merge", str(tmp_path / f"{kind}0.csv"), str(tmp_path / f"{kind}1.csv"),
                     "--out", str(tmp_path / f"{kind}_all.csv")]) == 0
    # the inputs are in path order, so the merge reads exactly as the unsharded run wrote: frames CSVs too, whose
    # face rows come before the audio rows of each video
    assert read_predictions(tmp_path / "p_all.csv") == read_predictions(tmp_path / "p.csv")
    for kind in ("s", "f"):
        assert (tmp_path / f"{kind}_all.csv").read_text() == (tmp_path / f"{kind}.csv").read_text()
    sources = [line.split(",")[2] for line in (tmp_path / "f_all.csv").read_text().splitlines()[1:]
               if line.startswith(str(inputs[0]))]
    assert sources == sorted(sources, key=lambda s: s != "face") and {"face", "audio"} <= set(sources)


def test_interrupted_run_keeps_the_finished_files(tmp_path, bundle, cremad_videos, monkeypatch):
    """Ctrl-C during the second video: the predictions, segments and frames CSVs hold the first video whole."""
    from mmfer.predict import Predictor, predict, read_predictions

    real = Predictor.predict_file
    calls = []

    def stop_on_second(self, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            kwargs["on_segment"](_seg(0, 4))  # a row of the video cut short, which must not stay
            raise KeyboardInterrupt
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(Predictor, "predict_file", stop_on_second)
    with pytest.raises(KeyboardInterrupt):
        predict(cremad_videos[:3], model=bundle, out=tmp_path / "p.csv", segments=tmp_path / "s.csv",
                frames=tmp_path / "f.csv", progress=False)
    rows = read_predictions(tmp_path / "p.csv")
    assert [r["clip_id"] for r in rows] == [cremad_videos[0].stem]
    assert {r["clip_id"] for r in read_segments(tmp_path / "s.csv")} == {cremad_videos[0].stem}
    with open(tmp_path / "f.csv") as f:
        assert {r["clip_id"] for r in csv.DictReader(f)} == {cremad_videos[0].stem}


def test_sound_longer_than_the_pictures_is_analysed_to_its_end(tmp_path, bundle, cremad_videos):
    """2-3 s of frames and 14 s of sound: segments run to 14 s, those after the pictures with sound only, and the
    row says where each stream ends; the tracks column names the face followed."""
    from mmfer.data.video import read_audio, read_frames
    from mmfer.predict import Predictor

    frames, _ = read_frames(cremad_videos[0], fps=8)
    sound = np.resize(read_audio(cremad_videos[0]), 14 * 16000)
    video = write_video(tmp_path / "long_sound.mp4", frames[:24], fps=8, audio=sound)
    pred = Predictor(bundle).predict_file(video, timeline=True)
    segs = pred.segments
    assert segs[-1].end == pytest.approx(14.0, abs=0.1) and segs[0].track == "1"
    assert segs[0].modalities == "face+audio" and segs[-1].modalities == "audio" and segs[-1].face_ratio is None
    assert f"the video stream ends at {min(24, len(frames)) / 8:.1f} s and the sound at 14." in pred.warning


def test_long_video_timeline_plot_shows_segments(tmp_path):
    """Over 30 segments the timeline is drawn by segment (one readable strip at an hour), else per frame."""
    import cv2

    from mmfer.plots import plot_timeline

    n = 900  # an hour of 4-s segments
    bounds = np.stack([np.arange(n) * 4.0, np.arange(1, n + 1) * 4.0], axis=1)
    probs = np.random.default_rng(0).dirichlet(np.ones(len(EMOTIONS)), n)
    probs[10:20] = 1 / 7  # nothing seen there
    long = plot_timeline(tmp_path / "long.png", segment_bounds=bounds, segment_probs=probs,
                         segment_face=np.linspace(0, 1, n), title="an hour")
    short = plot_timeline(tmp_path / "short.png", frame_times=np.arange(10) / 8, frame_probs=probs[:10],
                          segment_bounds=bounds[:1], segment_probs=probs[:1], title="a clip")
    a, b = cv2.imread(str(long)), cv2.imread(str(short))
    assert a.shape[1] > b.shape[1]  # the wide segment view, not the per-frame panels
    assert a.std() > 20


def test_frame_pooling_is_settable_for_any_model(bundle, cremad_videos):
    """Issue 22: --frame-pooling replaces a model's own pooling of face frames (here a bundle whose option is
    mean), and leaves the bundle it was given unchanged."""
    from mmfer.bundle import load_bundle
    from mmfer.inference.inputs import pool_frames
    from mmfer.predict import Predictor

    b = load_bundle(bundle)
    mean = Predictor(b).predict_file(cremad_videos[1], timeline=True)
    conf = Predictor(b, frame_pooling="confidence").predict_file(cremad_videos[1], timeline=True)
    face = mean.timeline["frame_probs"][mean.timeline["frame_face"]]
    np.testing.assert_allclose(conf.branches["face"], pool_frames(face, "confidence"), atol=1e-9)
    np.testing.assert_allclose(mean.branches["face"], pool_frames(face, "mean"), atol=1e-12)
    assert np.abs(conf.branches["face"] - mean.branches["face"]).max() > 0
    assert [x.options.get("frame_pooling") for x in b.branches if x.kind == "face_image"] == ["mean"]
    with pytest.raises(MmferError, match="--frame-pooling 'max'"):
        Predictor(b, frame_pooling="max")


def test_a_stream_that_breaks_off_is_analysed_as_far_as_it_goes(tmp_path, bundle, cremad_videos):
    """A video cut in the middle of its data (a streamable container, so the start still plays): the frames
    before the break are analysed, and the row says at which second the pictures stop."""
    import re

    from mmfer.data.video import read_frames
    from mmfer.predict import Predictor

    frames, _ = read_frames(cremad_videos[0], fps=8)
    whole = write_video(tmp_path / "whole.mkv", np.concatenate([frames] * 4), fps=8)  # streamable container
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    pred = Predictor(bundle).predict_file(cut)
    assert pred.ok, pred.warning
    m = re.search(r"the video stream breaks off at ([0-9.]+) s", pred.warning)
    assert m and 0 < float(m.group(1)) < len(frames) * 4 / 8
    assert pred.segments[-1].end == pytest.approx(float(m.group(1)), abs=0.2)
    assert str(cut) not in pred.warning  # the row names its file already; the decoder's notes come without it
    assert "file looks truncated: the video stream breaks off at" in pred.warning  # its size says so too


def test_each_segment_hears_exactly_its_own_sound(tmp_path, bundle, cremad_videos):
    """Cuts made after both streams have ended (sound running on past the pictures) still give each segment its
    own span of sound: the audio branch of every segment equals the model on exactly [start, end)."""
    from mmfer.data.video import read_audio, read_frames
    from mmfer.inference.inputs import audio_clip
    from mmfer.predict import Predictor

    frames, _ = read_frames(cremad_videos[0], fps=8)
    sound = np.resize(read_audio(cremad_videos[0]), int(14.3 * 16000))  # the last pull ends it 6+ s past a cut
    video = write_video(tmp_path / "talk.mp4", frames[:16], fps=8, audio=sound)
    p = Predictor(bundle)
    pred = p.predict_file(video)
    heard = read_audio(video)
    assert len(pred.segments) >= 2
    for seg in pred.segments:
        a, b = int(round(seg.start * 16000)), int(round(seg.end * 16000))
        part = heard[a:] if seg is pred.segments[-1] else heard[a:b]
        want = p.clip_probs_many(p.bundle.of("audio"), [audio_clip(part, "x")])
        np.testing.assert_allclose(seg.branches["audio"], want["audio"][0], atol=1e-6, err_msg=f"{seg.start}")


def test_audio_windows_are_scored_for_short_files_or_when_frames_are_asked(bundle, cremad_videos, monkeypatch):
    """The sliding audio windows (for --frames, and the plots of short files) cost about as much again as the
    segments' own audio: a file longer than AUDIO_WINDOWS_UP_TO_S skips them unless --frames asks."""
    import mmfer.inference.stream as stream
    from mmfer.predict import Predictor

    p = Predictor(bundle)
    assert "audio_times" in p.predict_file(cremad_videos[0], timeline=True).timeline
    monkeypatch.setattr(stream, "AUDIO_WINDOWS_UP_TO_S", 1.0)  # the clip now counts as long
    long = p.predict_file(cremad_videos[0], timeline=True)
    assert "audio_times" not in long.timeline and "frame_probs" in long.timeline
    assert "audio_times" in p.predict_file(cremad_videos[0], timeline=True, audio_windows=True).timeline


def _threads_scoring_sound(monkeypatch) -> list[str]:
    """The names of the threads that score sound from now on, in order."""
    import threading

    import mmfer.inference.stream as stream

    where: list[str] = []
    real = stream.VideoAnalysis._score_sound

    def spy(self, *args, **kwargs):
        where.append(threading.current_thread().name)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(stream.VideoAnalysis, "_score_sound", spy)
    return where


def test_a_short_clips_sound_is_scored_beside_its_frames_with_the_same_result(bundle, cremad_videos, monkeypatch):
    """A clip of one segment has its sound scored in the sound thread while its frames are tracked; the result
    is the one scoring it afterwards gives."""
    import mmfer.inference.stream as stream
    from mmfer.predict import Predictor

    p = Predictor(bundle)
    where = _threads_scoring_sound(monkeypatch)
    ahead = p.predict_file(cremad_videos[0])
    assert where and all(n.startswith("mmfer-sound") for n in where), where
    assert "audio" in ahead.branches

    where.clear()
    monkeypatch.setattr(stream.VideoAnalysis, "_score_ahead", lambda *a, **k: None)
    after = p.predict_file(cremad_videos[0])
    assert where and not any(n.startswith("mmfer-sound") for n in where), where
    np.testing.assert_allclose(ahead.probs, after.probs, atol=1e-7)  # one torch thread there, two here
    for name in after.branches:
        np.testing.assert_allclose(ahead.branches[name], after.branches[name], atol=1e-7, err_msg=name)


def test_a_clip_of_several_segments_is_scored_in_the_calling_thread(tmp_path, bundle, cremad_videos, monkeypatch):
    """8 s of sound and frames: two segments, each scored when it is cut, as before the sound thread."""
    from mmfer.data.video import read_audio, read_frames
    from mmfer.predict import Predictor

    frames, _ = read_frames(cremad_videos[0], fps=8)
    video = write_video(tmp_path / "long.mp4", np.concatenate([frames] * 4)[:64], fps=8,
                        audio=np.resize(read_audio(cremad_videos[0]), 8 * 16000))
    where = _threads_scoring_sound(monkeypatch)
    pred = Predictor(bundle).predict_file(video)
    assert len(pred.segments) == 2 and len(where) == 2
    assert not any(n.startswith("mmfer-sound") for n in where), where


def test_sound_scored_ahead_that_no_segment_takes_is_finished_with_its_file(bundle, cremad_videos, monkeypatch):
    """Scoring ahead left over (frames that outrun the declared length, a file that fails) never runs on beside
    the next file; the segment scores its sound itself."""
    import threading
    import time

    import mmfer.inference.stream as stream
    from mmfer.predict import Predictor

    futures = []
    real_ahead, real_score = stream.VideoAnalysis._score_ahead, stream.VideoAnalysis._score_sound

    def ahead(self, *args, **kwargs):
        real_ahead(self, *args, **kwargs)
        self._ahead = {(r, lo, hi + 1): f for (r, lo, hi), f in self._ahead.items()}  # no segment matches
        futures.extend(self._ahead.values())

    def slow(self, *args, **kwargs):
        if threading.current_thread().name.startswith("mmfer-sound"):
            time.sleep(1.0)
        return real_score(self, *args, **kwargs)

    p = Predictor(bundle)
    monkeypatch.setattr(stream.VideoAnalysis, "_score_ahead", ahead)
    monkeypatch.setattr(stream.VideoAnalysis, "_score_sound", slow)
    pred = p.predict_file(cremad_videos[0])
    assert futures and all(f.done() for f in futures)
    assert "audio" in pred.branches


def test_a_timeline_of_a_file_named_in_another_script_draws_without_warnings(tmp_path):
    """A title the plotting font cannot draw (a Japanese file name) is written as character codes, not as empty
    boxes with a matplotlib warning per character."""
    import warnings

    from mmfer.plots import _drawable, plot_timeline

    assert _drawable("名前 a.mp4") == "\\u540d\\u524d a.mp4" and _drawable("Ünïcödé a.mp4") == "Ünïcödé a.mp4"
    t = np.arange(4) * 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = plot_timeline(tmp_path / "t.png", frame_times=t, frame_probs=np.full((4, 7), 1 / 7), title="名前 a.mp4")
    assert out.read_bytes()[:4] == b"\x89PNG"
    # two $ in a name are not maths: matplotlib raised on this one, and the whole predict --report run with it
    plot_timeline(tmp_path / "d.png", frame_times=t, frame_probs=np.full((4, 7), 1 / 7), title="a$\\frac{x$b.flv")
    from mmfer.plots import plot_ablation

    rows = [{"branches": "a$^{$", "val_in_sample_accuracy": 0.5, "val_cross_validated_accuracy": 0.4,
             "val_cross_validated_uar": 0.3}]
    assert plot_ablation(rows, tmp_path / "a.png", title="x$^{$").read_bytes()[:4] == b"\x89PNG"


def test_predict_keeps_segments_in_memory_only_when_asked(bundle, cremad_audio):
    """A notebook wants a file's segments without a CSV round trip; a folder of long recordings wants flat memory."""
    from mmfer.predict import Predictor, predict

    predictor = Predictor(bundle)
    kept = predict([cremad_audio[0]], model=predictor, segment_seconds=1.0, keep_segments=True, progress=False)
    segs = kept.predictions[0].segments
    assert len(segs) >= 2 and segs[0].start == 0 and all(a.end == b.start for a, b in zip(segs, segs[1:]))
    assert all(s.probs.shape == (len(EMOTIONS),) for s in segs)
    dropped = predict([cremad_audio[0]], model=predictor, segment_seconds=1.0, progress=False)
    assert dropped.predictions[0].segments is None
    np.testing.assert_allclose(dropped.probs, kept.probs)


def test_the_audio_windows_fuse_every_audio_branch_as_the_row_does(tmp_path, cremad_audio):
    """The plot's audio panel and --frames' audio rows came from the first audio branch alone (one of fifteen, at
    weight 0.02, in the shipped bundle), so they could contradict the row. A sound shorter than one window is
    one window of everything: it reads exactly what the file's row reads."""
    import soundfile as sf

    from mmfer.bundle import write_bundle
    from mmfer.data.video import read_audio
    from mmfer.predict import Predictor
    from predict_helpers import standin_run

    runs = {name: standin_run(tmp_path / name, "audio_cnn", seed=seed) for name, seed in (("a1", 2), ("a2", 7))}
    write_bundle(tmp_path / "b", [{"name": n, "run": r, "weight": w, "file": f"{n}.pt"}
                                  for (n, r), w in zip(runs.items(), (0.2, 0.8))], provenance={})
    bundle = tmp_path / "b"
    sf.write(tmp_path / "short.wav", read_audio(cremad_audio[0])[4000:16000], 16000)  # 0.75 s of speech
    pred = Predictor(bundle).predict_file(tmp_path / "short.wav", timeline=True, audio_windows=True)
    window = pred.timeline["audio_probs"]
    assert window.shape == (1, len(EMOTIONS)) and pred.modalities == "audio"
    np.testing.assert_allclose(window[0], pred.probs, atol=1e-6)
    assert not np.allclose(pred.branches["a1"], pred.probs, atol=1e-3)  # the first branch alone reads otherwise


def test_merge_reads_run_records_and_keeps_one_row_per_file_however_named(tmp_path, monkeypatch, caplog):
    """A shard killed mid-run was merged as if whole; one file named relative in one shard and absolute in another
    (a requeue from another folder) became two rows, sorted apart."""
    from mmfer.inference.resume import write_record
    from mmfer.inference.result import PREDICTION_COLUMNS

    monkeypatch.chdir(tmp_path)
    row = lambda path: [path, Path(path).stem, "Sad", *["0.1"] * 7, "1.000", "face+audio", ""]  # noqa: E731
    one = _write_csv(tmp_path / "p0.csv", PREDICTION_COLUMNS, [row("in/a.mp4"), row("in/c.mp4")])
    two = _write_csv(tmp_path / "p1.csv", PREDICTION_COLUMNS, [row(str(tmp_path / "in" / "b.mp4")),
                                                               row(str(tmp_path / "in" / "a.mp4"))])
    settings = {"model": "default", "weights": "x", "frame_pooling": None}
    for p in (one, two):
        assert write_record(p, settings, finished=True)
    done = merge_csvs([one, two], tmp_path / "all.csv")
    assert done["rows"] == 3 and [r[0] for r in csv.reader(open(tmp_path / "all.csv"))][1:] == [
        "in/a.mp4", str(tmp_path / "in" / "b.mp4"), "in/c.mp4"]
    write_record(two, settings, finished=False)  # killed, not requeued yet
    with pytest.raises(MmferError, match=r"p1.csv: its predict run did not finish .*--partial"):
        merge_csvs([one, two], tmp_path / "all.csv")
    assert merge_csvs([one, two], tmp_path / "all.csv", partial=True)["rows"] == 3
    write_record(two, {**settings, "frame_pooling": "confidence"}, finished=True)
    with pytest.raises(MmferError, match=r"p1.csv: written with other options .*frame_pooling None then"):
        merge_csvs([one, two], tmp_path / "all.csv")
    write_record(two, {**settings, "model": "/node7/copy"}, finished=True)  # a copy of the model on another machine
    with caplog.at_level("WARNING"):
        assert merge_csvs([one, two], tmp_path / "all.csv")["rows"] == 3
    assert "merge shards of one model only" not in caplog.text  # the same weights: one model
    write_record(two, {**settings, "weights": "y"}, finished=True)  # weights that differ: another model
    with caplog.at_level("WARNING"):
        assert merge_csvs([one, two], tmp_path / "all.csv")["rows"] == 3
    assert "weights 'x' then, 'y' now; merge shards of one model only" in caplog.text
    # shards of a cluster of CPU and GPU nodes (--device auto): merged, and said
    write_record(one, {**settings, "device": "cpu"}, finished=True)
    write_record(two, {**settings, "device": "cuda"}, finished=True)
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert merge_csvs([one, two], tmp_path / "all.csv")["rows"] == 3
    assert "device 'cpu' then, 'cuda' now; merged: their figures differ in the last digits" in caplog.text
    assert "merge shards of one model only" not in caplog.text


def test_a_model_is_known_by_its_weights_contents_wherever_it_lies(tmp_path):
    """Run records name a model by its weight files' contents: a copy elsewhere or the same files written again
    (a reinstall) is the same model, retrained in place it is another."""
    import os
    import shutil

    from mmfer.inference.resume import differences, model_key

    run = tmp_path / "run"
    (run / "fold1").mkdir(parents=True)
    (run / "best.pt").write_bytes(b"weights one")
    (run / "fold1" / "best.pt").write_bytes(b"fold weights")
    (run / "notes.txt").write_text("not a weight file")
    key = model_key(run)
    assert key["model"] == os.path.realpath(run) and len(key["weights"]) == 16
    copy = Path(shutil.copytree(run, tmp_path / "elsewhere"))
    os.utime(copy / "best.pt", (1, 1))
    assert model_key(copy)["weights"] == key["weights"] and differences(key, model_key(copy)) == []
    (run / "notes.txt").write_text("still not a weight file")
    (run / "best.pt").write_bytes(b"weights one")  # written again, same bytes
    assert model_key(run) == key
    (run / "fold1" / "best.pt").write_bytes(b"fold weights, retrained")
    assert model_key(run)["weights"] != key["weights"]
    assert differences(key, model_key(run)) == [f"weights {key['weights']!r} then, {model_key(run)['weights']!r} now"]
