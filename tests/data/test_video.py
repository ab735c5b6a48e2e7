"""Decoding on the real CREMA-D fixtures plus tiny generated broken/silent clips."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmfer.data.video import (
    DecodeError,
    in_background,
    in_thread,
    iter_frame_batches,
    probe_video,
    read_audio,
    read_frames,
)
from mmfer.errors import MmferError


def _silent_clip(path, frames=10, fps=10.0, size=(64, 48)):
    """A tiny MJPG avi with no audio stream."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(frames):
        w.write(np.full((size[1], size[0], 3), i * 20, np.uint8))
    w.release()
    return path


def test_probe_and_read_fixture(cremad_videos):
    p = cremad_videos[0]
    info = probe_video(p)
    assert (info.width, info.height) == (480, 360)
    assert info.fps == pytest.approx(29.97, abs=0.01)
    assert 60 <= info.frames <= 80 and info.has_audio
    assert info.duration == pytest.approx(info.frames / info.fps)
    frames, fps = read_frames(p)
    assert frames.shape == (info.frames, 360, 480, 3) and frames.dtype == np.uint8
    assert fps == pytest.approx(info.fps)
    assert frames.mean() > 10  # real picture, not black


def test_audio_length_matches_video(cremad_videos):
    for p in cremad_videos[:3]:
        info = probe_video(p)
        audio = read_audio(p)
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert abs(len(audio) / 16000 - info.duration) < 0.1
        assert 0.001 < np.abs(audio).max() <= 1.0
    assert abs(len(read_audio(cremad_videos[0], sample_rate=8000)) / 8000 - probe_video(cremad_videos[0]).duration) < 0.1


def test_batches_and_resampling(cremad_videos):
    p = cremad_videos[1]
    info = probe_video(p)
    batches = list(iter_frame_batches(p, batch_size=16))
    idx = np.concatenate([i for i, _ in batches])
    assert [len(f) for _, f in batches][:-1] == [16] * (len(batches) - 1)
    np.testing.assert_array_equal(idx, np.arange(info.frames))
    full, _ = read_frames(p)
    np.testing.assert_array_equal(batches[1][1], full[16:32])

    ten, fps = read_frames(p, fps=10)
    assert fps == 10 and abs(len(ten) - info.duration * 10) <= 1
    # output frame k is the source frame shown at k/10 s
    np.testing.assert_array_equal(ten[5], full[int(round(5 * info.fps / 10))])
    capped = np.concatenate([i for i, _ in iter_frame_batches(p, fps=10, max_frames=7)])
    np.testing.assert_array_equal(capped, np.arange(7))


def test_mp3_decodes(cremad_audio):
    audio = read_audio(cremad_audio[0])
    assert audio.dtype == np.float32 and 1.5 < len(audio) / 16000 < 4.0
    assert np.abs(audio).max() > 0.01


def test_sound_read_whole_is_capped_with_a_warning(cremad_audio, monkeypatch, caplog):
    """Training and preprocess read a file's sound into memory: a small FLAC of an hour of silence took 530 MB,
    and hours of it gigabytes. At most MAX_READ_SECONDS are read, and the cut is said."""
    import logging

    import mmfer.data.video as video

    whole = read_audio(cremad_audio[0])
    monkeypatch.setattr(video, "MAX_READ_SECONDS", 1)
    with caplog.at_level(logging.WARNING):
        capped = read_audio(cremad_audio[0])
    assert len(capped) == 16000
    assert "its sound is longer than" in caplog.text
    np.testing.assert_array_equal(capped, whole[:16000])
    caplog.clear()
    assert len(read_audio(cremad_audio[0], max_seconds=0.5)) == 8000 and not caplog.text  # asked for: no warning


def test_sound_of_exactly_the_cap_is_not_said_to_be_cut(tmp_path, monkeypatch, caplog):
    import logging
    import wave

    import mmfer.data.video as video

    monkeypatch.setattr(video, "MAX_READ_SECONDS", 1)
    samples = (np.sin(np.arange(16000) / 10.0) * 8000).astype("<i2")
    for name, n in (("exact.wav", 16000), ("longer.wav", 16001)):
        with wave.open(str(tmp_path / name), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
            w.writeframes(np.resize(samples, n).tobytes())
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert len(read_audio(tmp_path / name)) == 16000
        assert ("its sound is longer than" in caplog.text) == (n > 16000), name


def test_empty_and_text_files(tmp_path):
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    text = tmp_path / "notes.avi"
    text.write_text("this is not a video at all\n" * 5)
    for fn in (probe_video, read_audio, lambda p: next(iter_frame_batches(p))):
        with pytest.raises(DecodeError, match=r"empty\.avi: file is empty \(0 bytes\)"):
            fn(empty)
        with pytest.raises(DecodeError, match=r"notes\.avi: not a video file or unsupported format") as err:
            fn(text)
        assert err.value.reason == "not a video file or unsupported format"
        assert isinstance(err.value, MmferError)
    with pytest.raises(DecodeError, match="file not found"):
        probe_video(tmp_path / "missing.mp4")
    e = pickle.loads(pickle.dumps(DecodeError(text, "why", "what to do")))
    assert (e.reason, e.hint, str(e)) == ("why", "what to do", f"{text}: why; what to do")


def test_a_file_we_may_not_read_is_said_so_not_called_corrupt(cremad_videos, monkeypatch):
    """A clip with mode 000 was reported "truncated or corrupt ... re-copy or re-encode the clip"."""
    import av

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(av, "open", denied)
    for fn in (probe_video, read_audio):
        with pytest.raises(DecodeError, match="cannot be read: permission denied; check its permissions") as err:
            fn(cremad_videos[0])
        assert "corrupt" not in str(err.value)


def test_audio_only_file_has_no_video_stream(cremad_audio):
    with pytest.raises(DecodeError, match=r"no video stream \(audio only\?\)"):
        probe_video(cremad_audio[0])


def test_video_without_audio(tmp_path):
    p = _silent_clip(tmp_path / "silent.avi")
    info = probe_video(p)
    assert (info.frames, info.width, info.height, info.has_audio) == (10, 64, 48, False)
    audio = read_audio(p)
    assert audio.shape == (0,) and audio.dtype == np.float32
    frames, fps = read_frames(p)
    assert frames.shape == (10, 48, 64, 3) and fps == pytest.approx(10)
    assert frames[9].mean() > frames[1].mean() + 100  # frames come in order


def test_truncated_clip_keeps_good_part(tmp_path, cremad_videos):
    data = cremad_videos[0].read_bytes()
    p = tmp_path / "cut.flv"
    p.write_bytes(data[: len(data) // 2])
    warnings: list[str] = []
    frames = np.concatenate([f for _, f in iter_frame_batches(p, warnings=warnings)])
    assert 10 < len(frames) < probe_video(cremad_videos[0]).frames
    assert frames[-1].mean() > 10
    # a header cut off is a truncated container, not "not a video"
    head = tmp_path / "head.flv"
    head.write_bytes(data[:40])
    with pytest.raises(DecodeError, match="truncated or corrupt|no decodable"):
        probe_video(head)


def test_pyav_fallback_matches_decord(cremad_videos, monkeypatch):
    """Files decord cannot open are decoded by PyAV with the same frames, indices and resampling."""
    import mmfer.data.video as video

    p = cremad_videos[0]
    full, fps = read_frames(p)
    ten, _ = read_frames(p, fps=10)
    monkeypatch.setattr(video, "_decord_reader", lambda path: None)
    full_av, fps_av = read_frames(p)
    ten_av, _ = read_frames(p, fps=10)
    assert full_av.shape == full.shape and fps_av == pytest.approx(fps)
    assert ten_av.shape == ten.shape
    assert np.abs(full_av.astype(int) - full).mean() < 1.0  # same frames (colour conversion may differ by a bit)
    assert np.abs(ten_av.astype(int) - ten).mean() < 1.0
    batches = list(iter_frame_batches(p, fps=10, max_frames=7, batch_size=4))
    assert [i.tolist() for i, _ in batches] == [[0, 1, 2, 3], [4, 5, 6]]
    assert probe_video(p).frames == len(full)


def test_a_name_that_is_not_utf8_is_decoded_as_its_bytes_under_a_plain_name_are(tmp_path, cremad_videos):
    """decord cannot take a file name whose bytes are not UTF-8 (b'caf\\xe9.flv'), so PyAV read it and the face
    models saw frames a grey level or two off: the same file scored differently under another name."""
    import os
    import shutil

    odd = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.flv"))
    shutil.copy(cremad_videos[0], odd)
    import tempfile

    links = lambda: set(Path(tempfile.gettempdir()).glob("mmfer-name-*"))  # noqa: E731
    before = links()
    want, fps = read_frames(cremad_videos[0])
    got, got_fps = read_frames(odd)
    assert got_fps == fps and np.array_equal(got, want)
    assert links() == before  # the link it was opened through is gone


def test_long_clips_stream_through_pyav(cremad_videos, monkeypatch):
    """Past STREAM_ABOVE_BYTES of decoded frames, decoding streams through PyAV (decord buffered 2.3 GB
    ahead of face fitting on 2 minutes of 720p); the frames are the same."""
    import mmfer.data.video as video

    p = cremad_videos[0]
    ten, _ = read_frames(p, fps=10)
    used = []
    real = video._iter_frames_av
    monkeypatch.setattr(video, "_iter_frames_av", lambda *a, **k: used.append(1) or real(*a, **k))
    read_frames(p, fps=10)
    assert not used  # a short clip stays with decord
    monkeypatch.setattr(video, "STREAM_ABOVE_BYTES", 1)
    streamed, _ = read_frames(p, fps=10)
    assert used and streamed.shape == ten.shape and np.abs(streamed.astype(int) - ten).mean() < 1.0


def test_truncated_mp4_falls_back_and_warns(tmp_path):
    """An mp4 cut short (index up front, data missing) that decord refuses: PyAV keeps the good frames."""
    import av

    full = tmp_path / "full.mp4"
    c = av.open(str(full), "w", options={"movflags": "faststart"})
    s = c.add_stream("mpeg4", rate=10)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    for i in range(30):
        img = np.full((48, 64, 3), 8 * i, np.uint8)
        for pk in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            c.mux(pk)
    for pk in s.encode():
        c.mux(pk)
    c.close()
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    warnings: list[str] = []
    frames = np.concatenate([f for _, f in iter_frame_batches(cut, warnings=warnings)])
    assert 3 <= len(frames) < 30
    assert len(warnings) == 1 and "truncated or corrupt" in warnings[0] and "30" in warnings[0], warnings
    assert probe_video(cut).frames == len(frames)
    assert read_frames(full)[0].shape == (30, 48, 64, 3)


def test_in_background_keeps_order_errors_and_stops_early(cremad_videos):
    import threading

    direct = [f for _, f in iter_frame_batches(cremad_videos[0], batch_size=16)]
    ahead = [f for _, f in in_background(iter_frame_batches(cremad_videos[0], batch_size=16))]
    assert len(ahead) == len(direct) > 2 and all((a == b).all() for a, b in zip(ahead, direct))

    def broken():
        yield 1
        yield 2
        raise DecodeError("x.avi", "truncated or corrupt")

    got = []
    with pytest.raises(DecodeError, match="x.avi: truncated"):
        for item in in_background(broken()):
            got.append(item)
    assert got == [1, 2]  # items before the error arrive first

    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    for item in in_background(endless()):
        if item == 3:
            break
    names = [t.name for t in threading.enumerate()]
    assert "mmfer-decode" not in names and len(produced) <= 3 + 3  # the helper stopped, a batch or two ahead


def test_in_thread_gives_result_or_error(cremad_videos, tmp_path):
    wait = in_thread(read_audio, cremad_videos[0], sample_rate=16000)
    np.testing.assert_array_equal(wait(), read_audio(cremad_videos[0]))
    wait = in_thread(read_audio, tmp_path / "missing.avi")
    with pytest.raises(DecodeError, match="file not found"):
        wait()


def test_rotated_video_is_upright_in_both_decoders_and_in_meta(tmp_path, monkeypatch):
    """A phone clip stored sideways with a 90-degree display rotation: decord and PyAV give the same upright
    frames, and the cache records the size of the frames it stores (the container's is swapped)."""
    import av

    import mmfer.data.video as video

    path = tmp_path / "rotated.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 160, 96, "yuv420p"
        if not hasattr(s, "set_display_rotation"):
            pytest.skip("this PyAV cannot write a display rotation")
        s.set_display_rotation(90)
        for _ in range(6):
            f = np.zeros((96, 160, 3), np.uint8)
            f[:, :40] = 255  # a white band on the left of the stored frame
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    upright, _ = read_frames(path)
    monkeypatch.setattr(video, "_decord_reader", lambda p: None)
    streamed, _ = read_frames(path)
    monkeypatch.undo()
    assert upright.shape[1:3] == (160, 96) and streamed.shape == upright.shape
    assert np.abs(streamed.astype(int) - upright).mean() < 2.0

    from mmfer.data.cache import PreprocessSettings
    from mmfer.data.index import ClipEntry
    from mmfer.data.preprocess import process_clip

    _, meta, rec = process_clip(ClipEntry("rotated", "Test", None, path), PreprocessSettings(face_backend="none",
                                                                                             crop_size=32))
    assert (meta["width"], meta["height"]) == (96, 160)


def test_huge_frames_are_refused_from_the_header(tmp_path, monkeypatch):
    """Issue 20, class 12: a video whose frames pass 50 megapixels is refused from its header before any frame is
    decoded, in preprocess and in predict alike (a 3 MB 16000x16000 MJPEG peaked at 3-4 GB). A real 16000x16000
    header is written here; its two frames are never decoded."""
    import struct

    from mmfer.data import video
    from mmfer.data.index import ClipEntry
    from mmfer.data.preprocess import process_clip

    # a small MJPEG AVI, then its declared frame size patched to 16000x16000 in the headers (avih, strf)
    path = tmp_path / "huge.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 8, (64, 48))
    for _ in range(2):
        w.write(np.full((48, 64, 3), 128, np.uint8))
    w.release()
    data = bytearray(path.read_bytes())
    avih = data.find(b"avih") + 8
    data[avih + 32 : avih + 40] = struct.pack("<II", 16000, 16000)
    strf = data.find(b"strf") + 8
    data[strf + 4 : strf + 12] = struct.pack("<ii", 16000, 16000)
    sof = data.find(b"\xff\xc0")
    while sof >= 0:  # each JPEG's own frame header (SOF0: length, precision, height, width)
        data[sof + 5 : sof + 9] = struct.pack(">HH", 16000, 16000)
        sof = data.find(b"\xff\xc0", sof + 2)
    path.write_bytes(bytes(data))

    def no_decoding(*args, **kwargs):
        raise AssertionError("a frame was decoded")

    monkeypatch.setattr(video, "_decord_reader", no_decoding)
    monkeypatch.setattr(video, "_iter_frames_av", no_decoding)
    with pytest.raises(MmferError, match="16000x16000 pixels, over the 50 megapixels"):
        video.probe_video(path)
    with pytest.raises(MmferError, match="over the 50 megapixels"):
        next(video.iter_frame_batches(path))
    arrays, _, rec = process_clip(ClipEntry("huge", "Test", None, path))  # preprocess and predict's path
    assert arrays is None and rec.status == "failed" and "over the 50 megapixels" in rec.reason


def test_frame_times_come_from_timestamps(tmp_path):
    """Issue 20, class 6: frames are timed by their timestamps, not the header's average rate. A 12-s
    variable-frame-rate mkv (30 frames/s for 3 s, then one a second; the header says 30) keeps its 12 s; an AVI
    whose header claims 100,000 frames/s is timed at 25 frames/s with a note (not 1 frame of 98 analysed); and
    none of them, nor a 3-s video with a minute of sound, is called truncated."""
    import struct

    from mmfer.data.cache import PreprocessSettings
    from mmfer.data.index import ClipEntry
    from mmfer.data.preprocess import process_clip
    from mmfer.data.video import probe_video
    from predict_helpers import write_video, write_vfr_video

    vfr = write_vfr_video(tmp_path / "vfr.mkv", [*np.arange(90) / 30, *np.arange(3, 13)],
                          audio=np.random.default_rng(0).normal(0, 0.1, 16000 * 12).astype(np.float32))
    frames, fps = read_frames(vfr, fps=8)
    assert fps == 8 and len(frames) == 96  # the header's 30 frames/s gave 27 frames: 3.3 s
    info = probe_video(vfr)
    assert info.vfr and info.duration == pytest.approx(12.03, abs=0.05)
    native, native_fps = read_frames(vfr)  # natively: the mean rate of the grid, not the header's 30
    assert native_fps == pytest.approx(info.fps) and len(native) / native_fps == pytest.approx(12.03, abs=0.1)
    # output frame k is the source frame shown at k / 8 s: grey level 7 * i of source frame i
    assert frames[40].mean() == pytest.approx((7 * 92) % 255, abs=3)  # 5.0 s: source frame 92 (shown at 5 s)
    assert frames[12].mean() == pytest.approx((7 * 45) % 255, abs=3)  # 1.5 s: source frame 45
    settings = PreprocessSettings(face_backend="none", crop_size=32, fps=8)
    _, meta, rec = process_clip(ClipEntry("vfr", "Test", None, vfr), settings)
    assert rec.status == "ok" and rec.frames / rec.fps == pytest.approx(12.0, abs=0.2)
    assert not any("truncated" in w for w in rec.warnings), rec.warnings

    avi = tmp_path / "fast.avi"
    w = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for i in range(98):
        w.write(np.full((48, 64, 3), i, np.uint8))
    w.release()
    data = bytearray(avi.read_bytes())
    data[data.find(b"avih") + 8 : data.find(b"avih") + 12] = struct.pack("<I", 10)  # 10 us a frame
    strh = data.find(b"strh") + 8
    data[strh + 20 : strh + 28] = struct.pack("<II", 1, 100000)  # scale 1, rate 100000
    avi.write_bytes(bytes(data))
    _, _, rec = process_clip(ClipEntry("fast", "Test", None, avi), settings)
    assert rec.frames == 31 and any("100000 frames/s" in w for w in rec.warnings)
    assert not any("truncated" in w for w in rec.warnings), rec.warnings

    for ext in ("mkv", "mp4"):  # the container's duration is its sound's
        long_audio = write_video(tmp_path / f"long_audio.{ext}", np.full((24, 64, 64, 3), 100, np.uint8), fps=8,
                                 audio=np.random.default_rng(0).normal(0, 0.1, 16000 * 60).astype(np.float32))
        _, _, rec = process_clip(ClipEntry("la", "Test", None, long_audio),
                                 PreprocessSettings(face_backend="none", crop_size=32))
        assert rec.status == "ok" and rec.frames == 24 and not any("truncated" in w for w in rec.warnings), rec.warnings


def test_a_clip_cut_before_its_first_frame_says_so(tmp_path, cremad_videos):
    """A file cut inside its first frame (decord opens it, no frame decodes) is not told it 'kept the frames before'
    anything: the warning says that not one frame decodes."""
    cut = tmp_path / "cut.flv"
    cut.write_bytes(cremad_videos[0].read_bytes()[:20000])
    warnings: list[str] = []
    try:
        frames = [f for _, f in iter_frame_batches(cut, warnings=warnings)]
    except DecodeError as e:  # refused outright (nothing to keep), as clearly
        assert "not one video frame decodes" in str(e), e
        return
    assert sum(len(f) for f in frames) == 0
    assert any("not one video frame decodes" in w for w in warnings), warnings
    assert not any("kept the" in w for w in warnings), warnings


def test_training_reads_the_samples_predict_streams(tmp_path, cremad_videos, cremad_audio):
    """read_audio (the cache and the audio-file datasets) and iter_audio_chunks (mmfer predict) give the same
    samples: decord's reader kept Opus's 6.5 ms of priming samples and shifted 44.1 kHz mp3s by 16 samples."""
    import soundfile as sf

    from mmfer.data.video import iter_audio_chunks

    opus = tmp_path / "speech.ogg"
    sf.write(opus, read_audio(cremad_audio[1]), 16000, format="OGG", subtype="OPUS")
    for path in (cremad_audio[0], cremad_videos[0], opus):
        streamed = np.concatenate(list(iter_audio_chunks(path, sample_rate=16000)))
        np.testing.assert_array_equal(read_audio(path), streamed)
        np.testing.assert_array_equal(read_audio(path, max_seconds=1.0), streamed[:16000])


def test_a_sound_file_from_which_nothing_decodes_is_an_error_naming_it(tmp_path, cremad_audio):
    """Text saved as .flac, or a WAV header without samples, read as 0 samples with no word of why."""
    import soundfile as sf

    from mmfer.data.video import iter_audio_chunks

    (tmp_path / "text.flac").write_text("not audio\n")
    sf.write(tmp_path / "none.wav", np.zeros(0, np.float32), 16000)
    for name in ("text.flac", "none.wav"):
        with pytest.raises(DecodeError, match=rf"{name}: no sound decodes from it"):
            read_audio(tmp_path / name)
    # a start past the end of a good file is no error: nothing is left to give
    assert list(iter_audio_chunks(cremad_audio[0], start=60.0)) == []


def test_a_browser_recording_decord_cannot_open_is_timed_by_its_frames_timestamps(tmp_path):
    """A MediaRecorder WebM (live: no duration, no cues) at a variable rate: PyAV decodes it, and its frames are
    placed by their own timestamps, as decord places those of files it opens; a frame is shown until the next
    one (a hole in the recording shows the frame before it)."""
    from mmfer.data.video import _decord_reader, iter_frame_batches, probe_video
    from predict_helpers import write_vfr_video

    times = [*np.arange(60) / 30, *(2 + np.arange(10) / 5), 6.0, 6.1]  # 30 fps, 5 fps, then a 2-s hole
    webm = write_vfr_video(tmp_path / "live.webm", times, size=(48, 64), live_webm=True)
    if _decord_reader(webm) is not None:
        pytest.skip("this decord opens live WebM; the PyAV path is not reached")
    info = probe_video(webm, keep_reader=True)
    assert info.vfr and info.frames == len(times) and info.duration == pytest.approx(6.133, abs=0.01)
    for frames in ([f for _, f in iter_frame_batches(webm, fps=8, info=info)],
                   [f for _, f in iter_frame_batches(webm, fps=8)]):  # without a probe's timing: found the same way
        frames = np.concatenate(frames)
        assert len(frames) == 49  # 6.13 s at 8 frames/s (72 frames at the header's 30 frames/s would be 2.4 s)
        grey = lambda i: (7 * i) % 255  # noqa: E731 - source frame i's grey level
        assert frames[8].mean() == pytest.approx(grey(30), abs=4)  # 1.0 s: source frame 30
        assert frames[20].mean() == pytest.approx(grey(62), abs=4)  # 2.5 s: shown at 2.4 s, the next at 2.6
        assert frames[44].mean() == pytest.approx(grey(69), abs=4)  # 5.5 s, in the hole: the frame before it
        assert frames[48].mean() == pytest.approx(grey(70), abs=4)  # 6.0 s: the frame after the hole


def test_mpeg_transport_streams_are_decoded_in_order_from_their_first_frame(tmp_path, cremad_videos):
    """decord started an MPEG-TS (.mts, .m2ts) or program stream (.mpg) at its second keyframe, a GOP off its sound;
    such files go to PyAV, which decodes them in order."""
    import fractions

    import av

    from mmfer.data.video import _decord_reader, _is_mpeg_stream

    path = tmp_path / "cam.mts"
    c = av.open(str(path), "w", format="mpegts")
    v = c.add_stream("mpeg2video", rate=25)
    v.height, v.width, v.pix_fmt = 48, 64, "yuv420p"
    v.codec_context.gop_size = 12
    for i in range(50):
        f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), (i * 5) % 255, np.uint8), format="rgb24")
        f.pts, f.time_base = i, fractions.Fraction(1, 25)
        for pk in v.encode(f):
            c.mux(pk)
    for pk in v.encode():
        c.mux(pk)
    c.close()
    assert _is_mpeg_stream(path) and _decord_reader(path) is None
    frames, _ = read_frames(path, fps=5)
    assert len(frames) == 10
    for k in (0, 1, 5):  # output frame k is source frame 5k, grey 25k
        assert frames[k].mean() == pytest.approx((25 * k) % 255, abs=4), k
    assert not _is_mpeg_stream(cremad_videos[0])
