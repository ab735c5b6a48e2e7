"""`mmfer preprocess` on the real CREMA-D fixtures plus generated bad inputs: cache, manifest, resume, shards."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from mmfer.data.cache import MANIFEST, PreprocessSettings, iter_manifest, load_clip, read_manifest
from mmfer.cli import main
from mmfer.data import preprocess as pp
from mmfer.data.index import index_csv
from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS

DLIB = PreprocessSettings(face_backend="dlib")
NONE = PreprocessSettings(face_backend="none", crop_size=32, max_frames=8)  # fast: resume logic only
REAL_PROCESS_CLIP = pp.process_clip

# bad input name -> (expected status, words the reason/warnings must contain)
BAD = {
    "empty": ("failed", "empty"),
    "text": ("failed", "not a video"),
    "truncated": ("ok|failed", "truncated"),
    # cut at 60%: its durations say 7 frames and 8 decode, so only the RIFF size it declares tells
    "truncated_avi": ("ok", "file looks truncated: 8 frame(s) (0.3 s) decoded but its avi header declares"),
    "one_frame": ("ok", "only one video frame"),
    "silent": ("ok", "no audio"),
    "audio_only": ("failed", "no video stream"),
    "uhd": ("ok", "no audio"),
}


def _write_cv2(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    import cv2

    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert vw.isOpened(), f"cannot write {path}"
    for f in frames:
        vw.write(np.ascontiguousarray(f[..., ::-1]))
    vw.release()
    return path


def _fixture_frames(video: Path, n: int) -> list[np.ndarray]:
    from decord import VideoReader

    vr = VideoReader(str(video))
    return list(vr.get_batch(list(range(n))).asnumpy())


def make_bad_inputs(folder: Path, cremad_videos: list[Path], cremad_audio: list[Path]) -> dict[str, Path]:
    """Each kind of broken or odd input a corpus can hold, tiny and fast to make."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    out["empty"] = folder / "empty.avi"
    out["empty"].write_bytes(b"")
    out["text"] = folder / "text.avi"
    out["text"].write_text("this is not a video, just text with a video name\n" * 20)
    data = cremad_videos[0].read_bytes()
    out["truncated"] = folder / "truncated.flv"
    out["truncated"].write_bytes(data[: len(data) // 3])
    frames = _fixture_frames(cremad_videos[1], 12)
    out["one_frame"] = _write_cv2(folder / "one_frame.avi", frames[:1])
    out["silent"] = _write_cv2(folder / "silent.avi", frames)
    whole = out["silent"].read_bytes()
    out["truncated_avi"] = folder / "truncated_avi.avi"
    out["truncated_avi"].write_bytes(whole[: int(len(whole) * 0.6)])
    out["audio_only"] = folder / "audio_only.mp3"
    shutil.copy(cremad_audio[0], out["audio_only"])
    uhd = np.zeros((2160, 3840, 3), np.uint8)
    uhd[800:1400, 1600:2200] = 128
    out["uhd"] = _write_cv2(folder / "uhd.avi", [uhd, uhd, uhd])
    return out


def write_list(csv: Path, rows: list[tuple[Path, str, str]]) -> Path:
    csv.write_text("path,label,split\n" + "".join(f"{p},{lab},{s}\n" for p, lab, s in rows))
    return csv


@pytest.fixture(scope="session")
def bad_inputs(tmp_path_factory, cremad_videos, cremad_audio) -> dict[str, Path]:
    return make_bad_inputs(tmp_path_factory.mktemp("bad"), cremad_videos, cremad_audio)


@pytest.fixture(scope="session")
def full_run(tmp_path_factory, cremad_dir, bad_inputs):
    """One real run (dlib, two workers) over the six fixtures and every bad input."""
    work = tmp_path_factory.mktemp("run")
    good = [(e.path.resolve(), e.label, e.split) for e in index_csv(cremad_dir / "clips.csv")]
    bad = [(p, "", "Test") for p in bad_inputs.values()]
    csv = write_list(work / "list.csv", good + bad)
    cache = work / "cache"
    summary = pp.preprocess(csv, cache, workers=2, settings=DLIB, progress=False)
    return csv, cache, summary


def test_good_clips_cached_with_faces(full_run, cremad_videos):
    csv, cache, summary = full_run
    latest = read_manifest(cache)
    for video in cremad_videos:
        split = "Train" if any(c in video.stem for c in ("ANG", "DIS", "FEA", "HAP")) else "Val"
        rec = latest[(split, video.stem)]
        assert rec.status == "ok", rec.reason
        assert rec.face_frames >= 0.9 * rec.frames and rec.frames > 30
        assert 1.5 < rec.audio_seconds < 4.0 and rec.settings_hash == DLIB.hash
        assert rec.settings["face_backend"] == "dlib" and rec.label in EMOTIONS
        clip = load_clip(cache, split, video.stem)
        t = rec.frames
        assert clip.faces.shape == (t, 112, 112, 3) and clip.faces.dtype == np.uint8
        assert isinstance(clip.faces, np.memmap)
        assert clip.landmarks.shape == (t, 68, 2) and clip.boxes.shape == (t, 5) and clip.mask.shape == (t,)
        assert int(clip.mask.sum()) == rec.face_frames
        assert np.isnan(clip.landmarks[~clip.mask]).all() and np.isfinite(clip.landmarks[clip.mask]).all()
        assert clip.faces[clip.mask].mean() > 20  # real crops, not zeros
        assert clip.audio.dtype == np.float32 and abs(clip.audio.size / 16000 - rec.audio_seconds) < 0.01
        assert clip.meta["label"] == rec.label and clip.meta["labels"] == list(EMOTIONS)
    assert not list(cache.rglob(".tmp-*")) and not list(cache.rglob(".old-*"))


def test_streamed_cache_holds_what_processing_in_memory_gives(full_run, cremad_videos):
    """Workers stream the crops to disk as they are made; the cached clip is the in-memory result, exactly."""
    _, cache, _ = full_run
    video = cremad_videos[0]
    arrays, meta, rec = pp.process_clip(pp.ClipEntry(video.stem, "Train", None, video), DLIB)
    clip = load_clip(cache, "Train", video.stem)
    for name in ("faces", "landmarks", "mask", "audio"):
        assert np.array_equal(np.asarray(getattr(clip, name)), arrays[name], equal_nan=name == "landmarks"), name


def test_bad_inputs_reported_and_run_goes_on(full_run, bad_inputs):
    csv, cache, summary = full_run
    latest = read_manifest(cache)
    assert summary.total == 6 + len(BAD) and summary.done == summary.total
    for name, (status, words) in BAD.items():
        rec = latest[("Test", bad_inputs[name].stem)]
        assert rec.status in status.split("|"), (name, rec)
        text = (rec.reason + " " + " ".join(rec.warnings)).lower()
        assert words in text, (name, text)
        if rec.status == "failed":
            assert rec.reason and not (cache / "Test" / rec.clip_id).exists()
            assert any(f.clip_id == rec.clip_id and f.reason == rec.reason for f in summary.failures)
        else:
            assert load_clip(cache, "Test", rec.clip_id).num_frames == rec.frames
    assert latest[("Test", "one_frame")].frames == 1
    assert latest[("Test", "uhd")].frames == 3 and latest[("Test", "uhd")].face_frames == 0
    assert load_clip(cache, "Test", "silent").audio.size == 0
    assert summary.ok == 6 + sum(latest[("Test", p.stem)].status == "ok" for p in bad_inputs.values())
    table = summary.table()
    assert "failed clips" in table and "empty" in table and "Test/one_frame: " in table and "only one" in table


def test_rerun_rewrites_nothing(full_run):
    csv, cache, _ = full_run
    manifest = (cache / MANIFEST).read_bytes()
    stamps = {p: p.stat().st_mtime_ns for p in cache.rglob("*")}
    again = pp.preprocess(csv, cache, workers=2, settings=DLIB, progress=False)
    assert again.done == 0 and again.skipped == again.total
    assert len(again.failures) == sum(r.status == "failed" for r in read_manifest(cache).values())
    assert (cache / MANIFEST).read_bytes() == manifest
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*")} == stamps


def test_auto_workers_only_where_they_pay():
    assert pp.auto_workers(6, 2) == 1  # a handful of clips: spawning a worker costs more than it saves
    assert pp.auto_workers(pp.AUTO_CLIPS_PER_WORKER + 1, 2) == 2 and pp.auto_workers(1800, 2) == 2
    assert pp.auto_workers(1800, 16) == 16 and pp.auto_workers(0, 4) == 1
    # forked workers start at once: one per core as soon as there are clips for them
    assert pp.auto_workers(6, 2, start_method="fork") == 2 and pp.auto_workers(3, 16, start_method="fork") == 3
    assert pp.auto_workers(1, 2, start_method="fork") == 1


def test_workers_are_forked_only_without_torch(monkeypatch):
    import sys

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.delitem(sys.modules, "onnxruntime", raising=False)
    assert pp.worker_start_method("dlib") == "fork" and pp.worker_start_method("none") == "fork"
    assert pp.worker_start_method("insightface") == "spawn"  # onnxruntime's thread pools do not survive a fork
    for loaded in ("torch", "onnxruntime"):
        monkeypatch.setitem(sys.modules, loaded, object())
        assert pp.worker_start_method("dlib") == "spawn"
        monkeypatch.delitem(sys.modules, loaded)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert pp.worker_start_method("dlib") == "spawn"


def test_bad_input_batches_stay_small():
    assert pp._batch_size(3840, 2160) <= 8 and pp._batch_size(480, 360) == pp.MAX_BATCH


@pytest.fixture
def small_cache(tmp_path, cremad_dir, cremad_videos):
    """Three fixture clips with the fast no-face backend, for resume tests."""
    rows = [(p.resolve(), "", s) for p, s in zip(cremad_videos[:3], ("Train", "Train", "Val"))]
    csv = write_list(tmp_path / "list.csv", rows)
    cache = tmp_path / "cache"
    first = pp.preprocess(csv, cache, settings=NONE, progress=False)
    assert first.ok == 3
    return csv, cache


def _counting(monkeypatch, *, fail_after: int | None = None) -> list[str]:
    calls: list[str] = []
    real = REAL_PROCESS_CLIP

    def fake(entry, settings, **kwargs):
        if fail_after is not None and len(calls) >= fail_after:
            raise KeyboardInterrupt
        calls.append(entry.clip_id)
        return real(entry, settings, **kwargs)

    monkeypatch.setattr(pp, "process_clip", fake)
    return calls


def test_full_disk_stops_the_run_naming_the_clip(small_cache, monkeypatch):
    csv, cache = small_cache
    shutil.rmtree(cache / "Train" / "1001_DFA_DIS_XX")

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pp, "write_clip", full)
    with pytest.raises(MmferError, match=r"cannot write clip Train/1001_DFA_DIS_XX .*No space left"):
        pp.preprocess(csv, cache, settings=NONE, workers=1, progress=False)
    assert not (cache / "Train" / "1001_DFA_DIS_XX").exists()
    monkeypatch.undo()
    s = pp.preprocess(csv, cache, settings=NONE, progress=False)  # space again: only that clip is redone
    assert s.done == 1 and s.ok == 1 and (cache / "Train" / "1001_DFA_DIS_XX" / "meta.json").is_file()


def test_changed_setting_and_deleted_dir_are_redone(small_cache, monkeypatch):
    csv, cache = small_cache
    calls = _counting(monkeypatch)
    shutil.rmtree(cache / "Train" / "1001_DFA_DIS_XX")
    s = pp.preprocess(csv, cache, settings=NONE, progress=False)
    assert calls == ["1001_DFA_DIS_XX"] and s.skipped == 2
    assert load_clip(cache, "Train", "1001_DFA_DIS_XX").faces.shape[1:] == (32, 32, 3)
    calls.clear()
    bigger = PreprocessSettings(face_backend="none", crop_size=48, max_frames=8)
    s = pp.preprocess(csv, cache, settings=bigger, progress=False)
    assert sorted(calls) == ["1001_DFA_ANG_XX", "1001_DFA_DIS_XX", "1001_DFA_FEA_XX"] and s.skipped == 0
    assert all(r.settings_hash == bigger.hash for r in read_manifest(cache).values())
    assert load_clip(cache, "Val", "1001_DFA_FEA_XX").faces.shape[1:] == (48, 48, 3)
    calls.clear()
    src = Path(index_csv(csv)[0].path)
    os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns))  # same mtime: still skipped
    pp.preprocess(csv, cache, settings=bigger, progress=False)
    assert calls == []


def test_clips_of_an_older_mmfer_are_made_again_or_left_out_and_said(small_cache, monkeypatch, caplog):
    """A cache of an older cache_version: preprocess redid its clips saying only "0 cached, 3 to process", and a
    clip the source no longer listed (its file still there) stayed, so `train` refused the whole cache with advice
    that did not help."""
    import dataclasses
    import logging

    from mmfer.data.cache import _settings_hash, append_manifest

    csv, cache = small_cache
    for rec in read_manifest(cache).values():  # as that mmfer wrote them: its version in the settings and the hash
        old = {**rec.settings, "cache_version": 0}
        append_manifest(cache, dataclasses.replace(rec, settings=old, settings_hash=_settings_hash(old)))
    rows = index_csv(csv)
    write_list(csv, [(Path(r.path), "", r.split) for r in (rows[0], rows[2])])  # a Train clip no longer listed
    with caplog.at_level(logging.INFO):
        s = pp.preprocess(csv, cache, settings=NONE, progress=False)
    assert s.ok == 2 and "(2 of them cached by an older mmfer, made again)" in caplog.text
    assert [(f.clip_id, f.reason) for f in s.removed] == [
        ("1001_DFA_DIS_XX", "cached by an older mmfer (cache_version 0) and no longer listed; left out")]
    from mmfer.data.cache import split_records

    assert [r.clip_id for r in split_records(cache, "Train")] == ["1001_DFA_ANG_XX"]  # read without a refusal


def test_no_shared_memory_for_workers_is_said_with_the_way_round(small_cache, monkeypatch):
    """In a container with /dev/shm read-only the pool's locks could not be made, and the error blamed the output
    folder ("cannot write an output: the file system is read-only")."""
    import errno

    csv, cache = small_cache
    shutil.rmtree(cache / "Train" / "1001_DFA_DIS_XX")
    shutil.rmtree(cache / "Train" / "1001_DFA_ANG_XX")  # two clips to do: two workers

    def no_shm(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(pp, "ProcessPoolExecutor", no_shm)
    with pytest.raises(MmferError, match=r"cannot start 2 worker processes .*shared memory.*use --workers 1"):
        pp.preprocess(csv, cache, settings=NONE, workers=2, progress=False)
    assert pp.preprocess(csv, cache, settings=NONE, workers=1, progress=False).ok == 2


def test_damaged_clips_are_redone_on_resume(small_cache, monkeypatch):
    """A truncated array or a garbage meta.json used to count as cached forever."""
    csv, cache = small_cache
    calls = _counting(monkeypatch)
    faces = cache / "Train" / "1001_DFA_ANG_XX" / "faces.npy"
    faces.write_bytes(faces.read_bytes()[:200])
    (cache / "Val" / "1001_DFA_FEA_XX" / "meta.json").write_text("{not json")
    s = pp.preprocess(csv, cache, settings=NONE, progress=False)
    assert sorted(calls) == ["1001_DFA_ANG_XX", "1001_DFA_FEA_XX"] and s.skipped == 1
    assert load_clip(cache, "Train", "1001_DFA_ANG_XX").num_frames > 0


def test_interrupted_run_resumes(tmp_path, cremad_videos, monkeypatch):
    csv = write_list(tmp_path / "list.csv", [(p.resolve(), "", "Test") for p in cremad_videos])
    cache = tmp_path / "cache"
    calls = _counting(monkeypatch, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        pp.preprocess(csv, cache, settings=NONE, progress=False)
    done = [r.clip_id for r in iter_manifest(cache)]
    assert done == calls and len(done) == 2
    assert sorted(p.name for p in (cache / "Test").iterdir()) == sorted(done)
    calls = _counting(monkeypatch)
    s = pp.preprocess(csv, cache, settings=NONE, progress=False)
    assert s.skipped == 2 and s.done == 4 and not set(calls) & set(done)
    assert len(read_manifest(cache)) == 6


def test_shards_cover_every_clip_once(tmp_path, cremad_videos):
    csv = write_list(tmp_path / "list.csv", [(p.resolve(), "", s) for p in cremad_videos for s in ("Train", "Test")])
    cache = tmp_path / "cache"
    a = pp.preprocess(csv, cache, settings=NONE, shard="0/2", progress=False)  # as on the command line
    b = pp.preprocess(csv, cache, settings=NONE, shard=(1, 2), progress=False)
    assert a.total + b.total == 12 and a.total > 0 and b.total > 0
    records = list(iter_manifest(cache))
    assert len(records) == 12 and len({(r.split, r.clip_id) for r in records}) == 12
    assert [pp.shard_of("Train", "x", 4) for _ in range(3)] == [pp.shard_of("Train", "x", 4)] * 3
    with pytest.raises(Exception, match="0 <= i < n"):
        pp.parse_shard("2/2")


def test_cli_strict_exit_code(tmp_path, cremad_videos, capsys):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    csv = write_list(tmp_path / "list.csv", [(cremad_videos[0].resolve(), "Angry", "Train"), (empty, "", "Test")])
    args = ["preprocess", str(csv), "--out", str(tmp_path / "c"), "--face-backend", "none", "--crop-size", "32", "--max-frames", "4",
            "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Test/empty" in out and "empty" in out and "processed" in out
    assert main(args + ["--strict"]) == 1  # earlier failure still counts
    assert "1 clip(s) failed, e.g. Test/empty: " in capsys.readouterr().err  # a CI log shows why, not only the code
    (tmp_path / "nothing").mkdir()
    nothing = ["preprocess", str(tmp_path / "nothing"), "--out", str(tmp_path / "c0"), "--no-progress"]
    assert main(nothing) == 0 and main(nothing + ["--strict"]) == 1  # no clips found: a failure when strict
    assert "no clips in" in capsys.readouterr().err
    assert main(args + ["--retry-failed", "--splits", "Train"]) == 0
    assert main(["preprocess", str(csv), "--out", str(tmp_path / "c"), "--shard", "3/2"]) == 2
    rec = read_manifest(tmp_path / "c")[("Train", cremad_videos[0].stem)]
    assert rec.status == "ok" and json.loads((tmp_path / "c" / "Train" / rec.clip_id / "meta.json").read_text())[
        "label"] == "Angry"


def test_ctrl_c_with_workers_stops_cleanly_and_resumes(tmp_path, cremad_videos):
    """A real SIGINT to a 2-worker `mmfer preprocess`: exit 130, a resume hint, no half-written clip."""
    import signal
    import subprocess
    import sys
    import time

    csv = write_list(tmp_path / "list.csv", [(p.resolve(), "", s) for p in cremad_videos[:3] for s in ("Train", "Val")])
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "mmfer", "preprocess", str(csv), "--out", str(cache), "--workers", "2",
           "--face-backend", "none", "--crop-size", "32", "--max-frames", "30", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while not (cache / MANIFEST).exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    done = {(r.split, r.clip_id) for r in iter_manifest(cache)}
    if proc.returncode == 130:  # (on a very fast machine the run may finish before the signal lands)
        assert "again to resume" in err and 1 <= len(done) < 6
    else:
        assert proc.returncode == 0 and len(done) == 6
    assert not list(cache.rglob(".tmp-*"))
    for split, clip_id in done:
        assert (cache / split / clip_id / "meta.json").is_file()
    s = pp.preprocess(csv, cache, settings=PreprocessSettings(face_backend="none", crop_size=32, max_frames=30),
                      progress=False)
    assert s.skipped == len(done) and s.done == 6 - len(done) and len(read_manifest(cache)) == 6


def _die_on_disgust(entry, settings, overlap_io=True, out=None):
    """Runs inside a worker: the Disgust clip kills its process, like a decoder segfault or OOM kill."""
    if "_DIS_" in entry.clip_id:
        os._exit(3)
    return REAL_PROCESS_SAFE(entry, settings, overlap_io, out)


REAL_PROCESS_SAFE = pp._process_safe


@pytest.mark.slow
def test_worker_crash_fails_only_the_guilty_clip(tmp_path, cremad_videos, monkeypatch):
    monkeypatch.setattr(pp, "_process_safe", _die_on_disgust)
    rows = [(p.resolve(), "", "Train") for p in cremad_videos[:2]]  # ANG, DIS
    cache = tmp_path / "cache"
    s = pp.preprocess(write_list(tmp_path / "l.csv", rows), cache, workers=2,
                      settings=PreprocessSettings(face_backend="none", crop_size=32, max_frames=3), progress=False)
    latest = read_manifest(cache)
    assert latest[("Train", "1001_DFA_ANG_XX")].status == "ok"
    assert latest[("Train", "1001_DFA_DIS_XX")].status == "failed" and "worker process died" in s.failures[0].reason
    assert s.ok == 1 and s.failed == 1


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_forked_and_spawned_workers_cache_the_same(tmp_path, cremad_videos, start_method):
    """In a fresh process (a hang here, like the OpenCV fork deadlock this guards against, fails by timeout)."""
    import subprocess
    import sys

    rows = [(p.resolve(), "", "Train") for p in cremad_videos[:3]]
    csv = write_list(tmp_path / "l.csv", rows)
    code = f"""
import cv2, numpy as np
from mmfer.data.cache import PreprocessSettings
from mmfer.data import preprocess as pp
cv2.resize(np.zeros((720, 1280, 3), np.uint8), (640, 360))  # OpenCV's thread pool has run in this process
pp.worker_start_method = lambda backend: {start_method!r}
s = pp.preprocess({str(csv)!r}, {str(tmp_path / "pool")!r}, workers=2, progress=False,
                  settings=PreprocessSettings(face_backend="none", crop_size=32, max_frames=6))
print("workers", s.workers, "ok", s.ok)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "workers 2 ok 3" in proc.stdout
    alone = pp.preprocess(csv, tmp_path / "one", workers=1, progress=False,
                          settings=PreprocessSettings(face_backend="none", crop_size=32, max_frames=6))
    assert alone.ok == 3
    for p in cremad_videos[:3]:
        a, b = load_clip(tmp_path / "pool", "Train", p.stem), load_clip(tmp_path / "one", "Train", p.stem)
        np.testing.assert_array_equal(a.faces, b.faces)
        np.testing.assert_array_equal(a.audio, b.audio)


def test_a_backend_of_your_own_reaches_spawned_workers(tmp_path, cremad_videos):
    """`mmfer --import MODULE preprocess --face-backend NAME`: a backend the user's module registers is used by the
    workers too, which are spawned for it (not known to be fork-safe) and start without the user's module."""
    import subprocess
    import sys

    (tmp_path / "my_faces.py").write_text(
        "from mmfer.faces.backends import register_backend\n"
        "class Blind:\n"
        "    name = 'blind'\n"
        "    def detect(self, image):\n"
        "        return []\n"
        "    def landmarks(self, image, box):\n"
        "        raise AssertionError('no face, no landmarks')\n"
        "register_backend('blind', Blind)\n")
    csv = write_list(tmp_path / "list.csv", [(p.resolve(), "", "Train") for p in cremad_videos[:2]])
    cmd = [sys.executable, "-m", "mmfer", "--import", "my_faces", "preprocess", str(csv), "--out", "cache",
           "--face-backend", "blind", "--workers", "2", "--crop-size", "32", "--max-frames", "4", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "with 2 worker(s)" in proc.stderr
    latest = read_manifest(tmp_path / "cache")
    assert sorted(e.status for e in latest.values()) == ["ok", "ok"]
    for p in cremad_videos[:2]:
        clip = load_clip(tmp_path / "cache", "Train", p.stem)
        assert len(clip.mask) == 4 and not clip.mask.any()  # the blind backend's answer: no face in any frame
    proc = subprocess.run(cmd[:3] + cmd[5:8] + ["new_cache"] + cmd[9:], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 2 and "unknown face backend 'blind'" in proc.stderr and "--import MODULE" in proc.stderr
    assert not (tmp_path / "new_cache").exists()  # said before the source is read or the cache made

def test_a_script_without_the_main_guard_is_told_so_and_marks_no_clip_failed(tmp_path, cremad_videos):
    """Spawned workers run the script again; without the guard each died as it started, and every clip was recorded
    as failed ("out of memory or decoder crash?"), then skipped by the next run until --retry-failed."""
    import subprocess
    import sys

    csv = write_list(tmp_path / "l.csv", [(p.resolve(), "", "Train") for p in cremad_videos[:2]])
    script = tmp_path / "no_guard.py"
    script.write_text(
        "from mmfer.data.cache import PreprocessSettings\n"
        "from mmfer.data import preprocess as pp\n"
        "pp.worker_start_method = lambda backend: 'spawn'\n"
        f"pp.preprocess({str(csv)!r}, {str(tmp_path / 'cache')!r}, workers=2, progress=False,\n"
        "              settings=PreprocessSettings(face_backend='none', crop_size=32, max_frames=4))\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 1
    assert "the worker processes died as they started" in proc.stderr
    assert 'if __name__ == "__main__":' in proc.stderr
    assert read_manifest(tmp_path / "cache") == {}  # no clip recorded as failed

def test_cli_forks_one_worker_per_core_for_a_few_clips(tmp_path, cremad_videos):
    """`mmfer preprocess` loads no torch, so its workers are forked and a few clips already get every core."""
    import subprocess
    import sys

    csv = write_list(tmp_path / "list.csv", [(p.resolve(), "", "Train") for p in cremad_videos[:2]])
    code = ("import sys; from mmfer.cli import main; "
            f"rc = main(['preprocess', {str(csv)!r}, '--out', {str(tmp_path / 'cache')!r}, '--face-backend', 'none', "
            "'--crop-size', '32', '--max-frames', '4', '--no-progress']); "
            "print('torch loaded:', 'torch' in sys.modules); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "torch loaded: False" in proc.stdout
    assert f"with {min(2, os.cpu_count() or 1)} worker(s)" in proc.stderr


def test_settings_stored_before_fit_every_read_as_every_frame():
    old = {k: v for k, v in PreprocessSettings(detect_every=5).to_dict().items() if k != "fit_every"}
    read = PreprocessSettings.from_dict(old)
    assert read.fit_every == 1 and read.detect_every == 5  # those caches fitted landmarks on every frame
    assert read.differences(PreprocessSettings(detect_every=5)) == ["fit_every: 1 != 3"]
    assert PreprocessSettings.from_dict(PreprocessSettings().to_dict()) == PreprocessSettings()


def test_low_fps_with_sparse_fits_warns(tmp_path, cremad_videos, caplog):
    rows = [(cremad_videos[0].resolve(), "", "Train")]
    for fps, fit_every, warned in ((8.0, 3, True), (8.0, 1, False), (25.0, 3, False)):
        caplog.clear()
        settings = PreprocessSettings(face_backend="none", crop_size=32, max_frames=4, fps=fps, fit_every=fit_every)
        with caplog.at_level("WARNING", logger="mmfer.data.preprocess"):
            pp.preprocess(write_list(tmp_path / "l.csv", rows), tmp_path / f"c{fps}{fit_every}", settings=settings,
                          progress=False)
        assert ("--fit-every 1 fits every frame" in caplog.text) == warned


def test_a_clip_of_few_frames_a_second_or_with_longer_sound_says_so(tmp_path):
    """A clip of 5 frames/s of its own leaves 1.7 landmark fits a second with --fit-every 3, which the run-wide
    --fps check never saw; sound 3 s longer than the picture trains the audio branches on what no face branch saw."""
    from predict_helpers import write_video

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (10, 64, 64, 3), dtype=np.uint8)
    write_video(tmp_path / "slow.mp4", frames, fps=5)  # 2 s of picture
    write_video(tmp_path / "long_sound.mp4", frames[:6], fps=6, audio=0.1 * rng.standard_normal(4 * 16000))
    rows = [(tmp_path / "slow.mp4", "Happy", "Train"), (tmp_path / "long_sound.mp4", "Sad", "Train")]
    settings = dataclasses.replace(NONE, max_frames=None)  # a picture cut by --max-frames is not "shorter"
    pp.preprocess(write_list(tmp_path / "l.csv", rows), tmp_path / "c", settings=settings, progress=False)
    recs = {r.clip_id: r for r in read_manifest(tmp_path / "c").values()}
    assert NONE.fit_every > 1 and any("5 frames/s with --fit-every" in w for w in recs["slow"].warnings)
    assert any("the sound lasts 4.1 s and the picture 1.0 s" in w for w in recs["long_sound"].warnings)
    assert not any("sound lasts" in w for w in recs["slow"].warnings)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_workers_die_with_their_parent(tmp_path, cremad_videos, sig):
    """`kill`, `timeout` and container stops send SIGTERM or SIGKILL: workers used to live on forever."""
    import signal
    import subprocess
    import sys
    import time

    csv = write_list(tmp_path / "list.csv", [(p.resolve(), "", s) for p in cremad_videos for s in ("Train", "Val")])
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "mmfer", "preprocess", str(csv), "--out", str(cache), "--workers", "2",
           "--face-backend", "none", "--crop-size", "32", "--max-frames", "60", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children: set[int] = set()
    deadline = time.time() + 60
    # wait until the workers have cached a clip (so they were working, not dead on arrival), and are there
    while (len(children) < 2 or not any(r.status == "ok" for r in iter_manifest(cache))) and \
            proc.poll() is None and time.time() < deadline:
        try:
            children = {int(c) for c in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()}
        except OSError:
            pass
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.skip("the run finished before its workers could be seen")
    proc.send_signal(getattr(signal, sig))
    proc.communicate(timeout=60)
    deadline = time.time() + 20

    def alive(pid: int) -> bool:
        try:
            return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False

    while any(alive(c) for c in children) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(alive(c) for c in children), f"workers {children} outlived their parent ({sig})"
    if sig == "SIGTERM":
        assert proc.returncode == 130 and not list(cache.rglob(".tmp-*"))


def test_missing_sources_never_delete_finished_clips(tmp_path, cremad_videos, capsys):
    """Issue 20, class 8: files listed in a CSV are missing for one run (unmounted drive, renamed folder): their
    finished clips stay, with their records, and the run reports them as missing; with other settings too."""
    src = tmp_path / "src"
    src.mkdir()
    rows = [(shutil.copy(v, src / v.name), "Angry", "Train") for v in cremad_videos[:2]]
    csv = write_list(tmp_path / "list.csv", [(Path(p), lab, s) for p, lab, s in rows])
    cache = tmp_path / "cache"
    assert pp.preprocess(csv, cache, settings=NONE, progress=False).ok == 2
    before = {p: p.stat().st_size for p in cache.rglob("*.npy")}
    src.rename(tmp_path / "elsewhere")
    for settings in (NONE, PreprocessSettings(face_backend="none", crop_size=48, max_frames=8)):
        s = pp.preprocess(csv, cache, settings=settings, progress=False)
        assert len(s.missing) == 2 and s.failed == 0 and "source missing, cached clip kept" in s.table()
        assert {p: p.stat().st_size for p in cache.rglob("*.npy")} == before
        assert all(r.status == "ok" for r in read_manifest(cache).values())
    assert main(["preprocess", str(csv), "--out", str(cache), "--face-backend", "none", "--crop-size", "32",
                 "--max-frames", "8", "--no-progress"]) == 0
    assert "source missing" in capsys.readouterr().out
    (tmp_path / "elsewhere").rename(src)  # back: nothing to redo
    s = pp.preprocess(csv, cache, settings=NONE, progress=False)
    assert s.skipped == 2 and not s.missing


def test_no_write_follows_a_link_out_of_the_cache(tmp_path, cremad_videos):
    """Issue 20, class 9: a manifest.jsonl or a split folder that is a symbolic link out of the cache is refused
    before any clip, naming the link; nothing outside the cache is written."""
    csv = write_list(tmp_path / "list.csv", [(cremad_videos[0].resolve(), "Angry", "Train")])
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("keep me\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / MANIFEST).symlink_to(outside / "victim.txt")
    with pytest.raises(MmferError, match="symbolic link"):
        pp.preprocess(csv, cache, settings=NONE, progress=False)
    assert (outside / "victim.txt").read_text() == "keep me\n" and not (cache / "Train").exists()
    (cache / MANIFEST).unlink()
    (cache / "Train").symlink_to(outside, target_is_directory=True)
    with pytest.raises(MmferError, match="symbolic link.*outside"):
        pp.preprocess(csv, cache, settings=NONE, progress=False)
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"] and not (cache / MANIFEST).exists()
    # the lowest level refuses too: a clip folder or staging folder reached through a link
    from mmfer.data.cache import append_manifest, ClipRecord, remove_clip, staging_dir

    with pytest.raises(MmferError, match="symbolic link"):
        staging_dir(cache, "Train", "x")
    (outside / "x").mkdir()
    remove_clip(cache, "Train", "x")  # never deletes through the link
    assert (outside / "x").is_dir()
    (cache / "Train").unlink()
    (cache / MANIFEST).symlink_to(outside / "victim.txt")
    with pytest.raises(MmferError, match="symbolic link"):
        append_manifest(cache, ClipRecord(clip_id="x", split="Train", label=None, path="x", status="failed"))
    assert (outside / "victim.txt").read_text() == "keep me\n"


def test_bad_cache_structure_is_said_before_any_work(tmp_path, cremad_videos, monkeypatch, capsys):
    """Issue 20, class 10: a manifest that is a folder, and a read-only cache, are clear errors before any clip
    (no clip is written and left without its record, no traceback)."""
    csv = write_list(tmp_path / "list.csv", [(cremad_videos[0].resolve(), "Angry", "Train")])
    cache = tmp_path / "cache"
    (cache / MANIFEST).mkdir(parents=True)
    calls = _counting(monkeypatch)
    with pytest.raises(MmferError, match="not a file"):
        pp.preprocess(csv, cache, settings=NONE, progress=False)
    assert calls == [] and not (cache / "Train").exists()
    (cache / MANIFEST).rmdir()
    import tempfile as tf

    from mmfer import outputs

    real = tf.mkstemp

    def read_only(*args, dir=None, **kwargs):  # root ignores permission bits: a read-only mount, simulated
        if dir is not None and Path(dir).resolve() == cache.resolve():
            raise OSError(30, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(outputs.tempfile, "mkstemp", read_only)
    assert main(["preprocess", str(csv), "--out", str(cache), "--face-backend", "none", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Read-only file system" in err and "Traceback" not in err and calls == []


def test_a_cache_inside_the_source_folders_is_refused_before_any_work(tmp_path, cremad_videos, monkeypatch):
    """--out equal to the AFEW root put clip folders inside Train/ and Val/, and --out inside an emotion folder was
    read as clips: either way the next run failed ("emotion folder name not recognised"). The root's top is fine."""
    import shutil

    root = tmp_path / "afew"
    (root / "Train" / "Angry").mkdir(parents=True)
    shutil.copy(cremad_videos[0], root / "Train" / "Angry" / "a.flv")
    calls = _counting(monkeypatch)
    for out in (root, root / "Train" / "cache", root / "Train" / "Angry" / "c"):
        with pytest.raises(MmferError, match=r"(data folder itself|split or emotion folders).*e\.g\. .*cache"):
            pp.preprocess(root, out, settings=NONE, progress=False)
    assert calls == [] and sorted(p.name for p in (root / "Train").iterdir()) == ["Angry"]
    pp.preprocess(root, root / "caches" / "v1", settings=NONE, progress=False)  # not a split or emotion folder
    assert len(calls) == 1


def test_tiny_frames_get_a_plain_reason(tmp_path):
    """Issue 20, class 15: a 1x1 video was 'got uint8 (1, 1, 96)'; it is now a failed clip saying the frames are
    too small to hold a face."""
    from mmfer.data.index import ClipEntry

    path = _write_cv2(tmp_path / "tiny.avi", [np.full((1, 1, 3), 128, np.uint8)] * 4, fps=8)
    _, _, rec = pp.process_clip(ClipEntry("tiny", "Test", None, path))
    assert rec.status == "failed" and "too small to hold a face" in rec.reason and "uint8" not in rec.reason


def test_deleted_or_renamed_sources_leave_the_cache(tmp_path, cremad_videos, capsys):
    """A clip deleted or renamed in the source folder stops being a cached clip (training, scoring and the
    submission index no longer see it); its arrays stay and it comes back with its file. A clip whose file still
    exists but is not in this run's source (another folder preprocessed into the same cache) is left alone."""
    from mmfer.data.cache import split_records

    root = tmp_path / "afew"
    for v in cremad_videos[:3]:
        (root / "Test").mkdir(parents=True, exist_ok=True)
        shutil.copy(v, root / "Test" / v.name)
    other = tmp_path / "other"
    (other / "Test").mkdir(parents=True)
    extra = shutil.copy(cremad_videos[3], other / "Test" / cremad_videos[3].name)
    cache = tmp_path / "cache"
    pp.preprocess(root, cache, settings=NONE, progress=False)
    pp.preprocess(other, cache, settings=NONE, progress=False)
    ids = [r.clip_id for r in split_records(cache, "Test")]
    assert len(ids) == 4
    gone, renamed = root / "Test" / cremad_videos[0].name, root / "Test" / cremad_videos[1].name
    kept_arrays = sorted((cache / "Test" / cremad_videos[0].stem).rglob("*.npy"))
    gone.unlink()
    renamed.rename(root / "Test" / "renamed.flv")
    s = pp.preprocess(root, cache, settings=NONE, progress=False)
    assert sorted(f.clip_id for f in s.removed) == sorted([cremad_videos[0].stem, cremad_videos[1].stem])
    assert "left out, source deleted, renamed or moved to another split (2)" in s.table() and s.ok == 1  # renamed: new
    assert sorted(r.clip_id for r in split_records(cache, "Test")) == sorted(
        [cremad_videos[2].stem, "renamed", Path(extra).stem])
    assert kept_arrays and all(p.exists() for p in kept_arrays)
    again = pp.preprocess(root, cache, settings=NONE, progress=False)  # said once, not every run
    assert not again.removed and again.skipped == 2
    shutil.copy(cremad_videos[0], gone)  # back: a clip again
    back = pp.preprocess(root, cache, settings=NONE, progress=False)
    assert back.ok == 1 and cremad_videos[0].stem in [r.clip_id for r in split_records(cache, "Test")]

    # --prune erases what a deleted recording left: the arrays and every manifest line naming it (path, label)
    gone.unlink()
    with pytest.raises(MmferError, match="--prune with --shard 0/2"):
        pp.preprocess(root, cache, settings=NONE, progress=False, prune=True, shard=(0, 2))
    pruned = pp.preprocess(root, cache, settings=NONE, progress=False, prune=True)
    erased = sorted([("Test", cremad_videos[0].stem), ("Test", cremad_videos[1].stem)])
    assert pruned.pruned == erased and "erased (--prune)  2 removed clip(s)" in pruned.table()
    manifest = (cache / "manifest.jsonl").read_text()
    assert cremad_videos[0].name not in manifest and cremad_videos[1].name not in manifest
    assert not (cache / "Test" / cremad_videos[0].stem).exists() and not (cache / "Test" / cremad_videos[1].stem).exists()
    assert sorted(r.clip_id for r in split_records(cache, "Test")) == sorted(
        [cremad_videos[2].stem, "renamed", Path(extra).stem])  # the others, whole and still cached
    assert pp.preprocess(root, cache, settings=NONE, progress=False, prune=True).skipped == 2


def test_a_moved_folder_is_not_taken_for_deleted_files_and_a_split_move_leaves_the_old_split(tmp_path, cremad_videos):
    """A source folder moved (or a drive unmounted) leaves its clips alone when another folder is preprocessed into
    the same cache; re-preprocessed from its new place, its records follow it, so a file deleted there later is
    seen. A list that moves a file from Val to Train takes it out of Val (it would be in both)."""
    from mmfer.data.cache import split_records

    a = tmp_path / "a"
    (a / "Test").mkdir(parents=True)
    for v in cremad_videos[:2]:
        shutil.copy(v, a / "Test" / v.name)
    b = tmp_path / "b"
    (b / "Test").mkdir(parents=True)
    shutil.copy(cremad_videos[2], b / "Test" / cremad_videos[2].name)
    cache = tmp_path / "cache"
    pp.preprocess(a, cache, settings=NONE, progress=False)
    a.rename(tmp_path / "a_moved")
    s = pp.preprocess(b, cache, settings=NONE, progress=False)
    assert not s.removed and len(split_records(cache, "Test")) == 3  # a's folder is gone, not its files
    moved = pp.preprocess(tmp_path / "a_moved", cache, settings=NONE, progress=False)
    assert moved.skipped == 2 and not moved.removed
    (tmp_path / "a_moved" / "Test" / cremad_videos[0].name).unlink()
    later = pp.preprocess(tmp_path / "a_moved", cache, settings=NONE, progress=False)
    assert [f.clip_id for f in later.removed] == [cremad_videos[0].stem]

    rows = [(cremad_videos[3], "Angry", "Val"), (cremad_videos[4], "Happy", "Train")]
    lst = write_list(tmp_path / "list.csv", rows)
    c2 = tmp_path / "c2"
    pp.preprocess(lst, c2, settings=NONE, progress=False)
    write_list(lst, [(cremad_videos[3], "Angry", "Train"), (cremad_videos[4], "Happy", "Train")])
    s = pp.preprocess(lst, c2, settings=NONE, progress=False)
    assert [(f.split, f.clip_id) for f in s.removed] == [("Val", cremad_videos[3].stem)]
    assert "moved to Train" in s.removed[0].reason
    assert sorted(r.clip_id for r in split_records(c2, "Train")) == sorted(v.stem for v in cremad_videos[3:5])


def test_two_sources_with_the_same_clip_ids_in_one_cache_are_said(tmp_path, cremad_videos, caplog):
    """Two trees whose files share names, preprocessed into one cache, replace each other's clips on every run:
    the run says so, naming a clip and both files. A copy of the same file moved elsewhere is not that."""
    a, b = tmp_path / "a" / "Test", tmp_path / "b" / "Test"
    for d, v in ((a, cremad_videos[0]), (b, cremad_videos[1])):
        d.mkdir(parents=True)
        shutil.copy(v, d / "clip.flv")
    cache = tmp_path / "cache"
    pp.preprocess(a.parent, cache, settings=NONE, progress=False)
    with caplog.at_level("WARNING"):
        pp.preprocess(b.parent, cache, settings=NONE, progress=False)
    assert "1 cached clip(s) will be made from another file" in caplog.text and "Test/clip" in caplog.text
    assert str(a / "clip.flv") in caplog.text and "one cache per source" in caplog.text


def test_a_class_folder_deleted_whole_leaves_the_cache_and_reruns_add_no_records(tmp_path, cremad_videos,
                                                                                 monkeypatch):
    """A class folder (or RAVDESS Actor_05/) deleted whole: its clips were kept, taken for an unmounted drive. A
    source given by a relative path appended a path record for every clip on every run. A split move is seen
    across shards."""
    from mmfer.data.cache import iter_manifest, split_records

    monkeypatch.chdir(tmp_path)
    for k, v in enumerate(cremad_videos[:4]):
        folder = tmp_path / "src" / "Train" / ("Happy" if k < 2 else "Sad")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(v, folder / v.name)
    pp.preprocess("src", "cache", settings=NONE, progress=False)
    lines = len(list(iter_manifest("cache")))
    pp.preprocess("src", "cache", settings=NONE, progress=False)
    assert len(list(iter_manifest("cache"))) == lines  # nothing changed, nothing appended
    shutil.rmtree(tmp_path / "src" / "Train" / "Happy")
    s = pp.preprocess("src", "cache", settings=NONE, progress=False)
    assert sorted(f.clip_id for f in s.removed) == sorted(v.stem for v in cremad_videos[:2])
    assert sorted(r.clip_id for r in split_records("cache", "Train")) == sorted(v.stem for v in cremad_videos[2:4])

    rows = [(cremad_videos[k], "Angry", "Val") for k in range(4)]
    lst = write_list(tmp_path / "list.csv", rows)
    for i in range(2):
        pp.preprocess(lst, "c2", settings=NONE, progress=False, shard=(i, 2))
    write_list(lst, [(cremad_videos[0], "Angry", "Train")] + rows[1:])
    removed = [f for i in range(2) for f in pp.preprocess(lst, "c2", settings=NONE, progress=False,
                                                           shard=(i, 2)).removed]
    assert [(f.split, f.clip_id) for f in removed] == [("Val", cremad_videos[0].stem)]


def test_a_class_folder_linked_to_an_unmounted_drive_is_not_taken_for_deleted(tmp_path, cremad_videos):
    from mmfer.data.cache import split_records

    drive = tmp_path / "drive" / "Happy"
    drive.mkdir(parents=True)
    shutil.copy(cremad_videos[0], drive / cremad_videos[0].name)
    (tmp_path / "src" / "Train").mkdir(parents=True)
    os.symlink(drive, tmp_path / "src" / "Train" / "Happy")
    sad = tmp_path / "src" / "Train" / "Sad"
    sad.mkdir()
    shutil.copy(cremad_videos[1], sad / cremad_videos[1].name)
    pp.preprocess(tmp_path / "src", tmp_path / "cache", settings=NONE, progress=False)
    (tmp_path / "drive").rename(tmp_path / "unmounted")  # the link now points at nothing
    s = pp.preprocess(tmp_path / "src", tmp_path / "cache", settings=NONE, progress=False)
    assert not s.removed and len(split_records(tmp_path / "cache", "Train")) == 2


def test_settings_are_checked_where_a_clip_is_made_never_where_a_cache_is_read(tmp_path, cremad_videos, capsys):
    """Values no clip can be made with are refused naming the option (command line and API alike); settings read
    back from a cache are not (older mmfer stored fps 0 for the native rate). A list of ClipEntry is checked for
    ids that would share a folder, as folders and CSV lists are."""
    from mmfer.cli import main
    from mmfer.data.index import ClipEntry

    assert PreprocessSettings.from_dict({**PreprocessSettings().to_dict(), "fps": 0.0}).fps == 0.0
    with pytest.raises(MmferError, match=r"crop_size \(--crop-size\) 0: must be at least 1"):
        pp.preprocess([ClipEntry("a", "Test", None, cremad_videos[0])], tmp_path / "c", settings=PreprocessSettings(crop_size=0))
    assert main(["preprocess", str(cremad_videos[0]), "--out", str(tmp_path / "c"), "--fps", "0"]) == 2
    assert "fps (--fps) 0.0: must be positive (or left out for the native rate)" in capsys.readouterr().err
    twins = [ClipEntry("Clip1", "Test", None, cremad_videos[0]), ClipEntry("clip1", "Test", None, cremad_videos[1])]
    with pytest.raises(MmferError, match="clip ids 'Clip1' and 'clip1', one name where letter case"):
        pp.preprocess(twins, tmp_path / "c", settings=NONE, progress=False)
    assert not (tmp_path / "c" / "manifest.jsonl").exists()
