"""Decoding clips: probe, batched frame decoding (optionally resampled to a fixed fps) and 16 kHz mono audio.

decord decodes frames (batched ``get_batch`` decoding is several times faster than frame-by-frame); PyAV
decodes what decord cannot open (some truncated containers, long clips streamed) and all sound.
There is no system ffmpeg: both libraries bring their own.
Every failure a user can meet is a :class:`DecodeError` whose ``reason`` is short enough for a manifest.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import cv2  # noqa: F401 - load OpenCV before decord: the other order breaks OpenCV's PNG codec (zlib clash)
import numpy as np

from mmfer.data.containers import cut_short, no_stream_reason
from mmfer.data.timing import (
    FALLBACK_FPS,
    MAX_PLAUSIBLE_FPS,
    FrameTiming,
    output_indices,
    frame_timing,
    timed_indices,
)
from mmfer.data.index import AUDIO_EXTENSIONS, is_audio
from mmfer.errors import MmferError

log = logging.getLogger(__name__)

# A decoded batch is kept under this many bytes, so 4K clips do not blow up memory.
MAX_BATCH_BYTES = 256 * 1024 * 1024

# Leading bytes of containers we know: a file that starts like a video but cannot be read is truncated/corrupt.
_MAGIC = (b"RIFF", b"FLV", b"\x1a\x45\xdf\xa3", b"OggS", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3",
          b"fLaC", b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2", b"\xff\xf1", b"\xff\xf9")  # audio too


# Largest frame decoded: 50 megapixels (150 MB as RGB), as for images in predict; a face needs far fewer. A
# 3 MB MJPEG of two 16000x16000 frames would otherwise take gigabytes before anything could refuse it.
MAX_VIDEO_PIXELS = 50_000_000


def check_frame_size(path: str | Path, width: int, height: int) -> None:
    """Refuse frames over ``MAX_VIDEO_PIXELS`` from the size the header declares, before any is decoded."""
    if width * height > MAX_VIDEO_PIXELS:
        raise DecodeError(path, f"frames are {width}x{height} pixels, over the {MAX_VIDEO_PIXELS // 1_000_000} "
                                "megapixels mmfer decodes", "downscale the video first (e.g. to 1920 px wide)")


class DecodeError(MmferError):
    """A clip that cannot be decoded; ``reason`` is the short cause ("file is empty (0 bytes)", ...)."""

    def __init__(self, path: str | Path, reason: str, hint: str = ""):
        self.path = str(path)
        self.reason = reason
        self.hint = hint
        super().__init__(f"{path}: {reason}" + (f"; {hint}" if hint else ""))

    def __reduce__(self):  # keep it picklable across worker processes
        return (type(self), (self.path, self.reason, self.hint))


class NoUsablePicture(DecodeError):
    """A video whose picture cannot show a face (frames a few pixels wide): predict scores its sound alone."""


class NoVideoStream(NoUsablePicture):
    """A "video" file that holds sound only (a voice memo saved as .mp4): predict scores it as a sound file."""


@dataclass
class VideoInfo:
    """What a clip holds, without decoding its frames."""

    path: Path
    frames: int
    fps: float
    width: int
    height: int
    duration: float
    has_audio: bool
    declared_seconds: float | None = None  # duration the container header declares, None if unknown
    # the video stream's own declared duration (the container's may be a longer audio track's), None if unknown
    declared_video_seconds: float | None = None
    vfr: bool = False  # frames are not evenly spaced in time: decoding resamples them by their timestamps
    cut_short: str = ""  # what the file's byte structure declares beyond its end (containers.cut_short), "" if whole
    notes: list[str] = field(default_factory=list)  # what was not as the header said (an absurd frame rate)
    # the open decord reader, kept by probe_video(keep_reader=True) for iter_frame_batches(info=...)
    reader: Any = field(default=None, repr=False, compare=False)
    # where decord cannot open the file: the frames' timing from PyAV's decode, so that iter_frame_batches(info=...)
    # places unevenly spaced frames by their timestamps without decoding the file a third time
    timing: FrameTiming | None = field(default=None, repr=False, compare=False)
    # seconds from time 0 (clock_origin) to the first frame, where the picture comes in late (0 within
    # SOUND_GAP_S): predict places frames on the file's clock, as it places sound (iter_audio_chunks)
    start_offset: float = 0.0


def _quiet() -> None:
    """Silence decord's and FFmpeg's chatter (failures are DecodeErrors); PyAV 13+ is silent, its level left."""
    try:
        import decord

        decord.logging.set_level(decord.logging.QUIET)
    except Exception:  # pragma: no cover - a decoder missing is reported where it is used
        pass
    try:
        import av.logging

        if int(av.__version__.split(".")[0]) < 13:
            av.logging.set_level(av.logging.PANIC)
    except Exception:  # pragma: no cover
        pass


def import_decoders() -> None:
    """Import decord and PyAV now (about 0.1 s), e.g. in a parent before it forks workers that all need them."""
    import av  # noqa: F401
    import decord  # noqa: F401

    _quiet()


def _check_file(path: Path) -> None:
    if not path.exists():  # named by a list, or deleted since its folder was read
        raise DecodeError(path, "file not found", "check that it still exists (and its path, if a list names it)")
    if path.is_dir():
        raise DecodeError(path, "is a directory, not a video file")
    if not path.is_file():  # a FIFO, a device: not a file to decode (its size reads 0)
        raise DecodeError(path, "not a regular file (a pipe or device)")
    if path.stat().st_size == 0:
        raise DecodeError(path, "file is empty (0 bytes)", "re-copy or re-download it")


def _looks_like_media(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(12)
    return head.startswith(_MAGIC) or head[4:8] == b"ftyp"


def _av_open(path: Path):
    """PyAV container, or a DecodeError that says why not."""
    import av

    _quiet()
    try:
        return av.open(str(path))
    except av.error.InvalidDataError:
        audio = path.suffix.lower() in AUDIO_EXTENSIONS
        if _looks_like_media(path):
            raise DecodeError(path, "truncated or corrupt: the " + ("audio file's" if audio else "container") +
                              " header cannot be read", "re-copy or re-encode the " + ("file" if audio else "clip")) from None
        if audio:
            raise DecodeError(path, f"not a readable {path.suffix.lower()[1:]} audio file (corrupt, or another format "
                                    "than its extension says)", "re-copy it, or convert it to wav (16-bit PCM)") from None
        raise DecodeError(path, "not a video file or unsupported format",
                          "convert it to mp4/avi (H.264) or drop it from the list") from None
    except PermissionError:  # (PyAV's own is one too) the file is fine: it is not ours to read
        raise DecodeError(path, "cannot be read: permission denied", "check its permissions (chmod a+r)") from None
    except (av.error.FFmpegError, OSError) as e:
        raise DecodeError(path, f"truncated or corrupt: {e}", "re-copy or re-encode the clip") from None


def _is_mpeg_stream(path: Path) -> bool:
    """An MPEG transport stream (.ts, camcorders' .mts/.m2ts: 188- or 192-byte packets) or program stream (.mpg,
    .vob). decord seeks these by keyframe and starts them a whole GOP off (its frame 0 was the second keyframe: the
    picture half a second from its sound), so PyAV decodes them in order instead."""
    try:
        with open(path, "rb") as f:
            head = f.read(400)
    except OSError:
        return False
    ts = len(head) > 376 and head[0] == head[188] == head[376] == 0x47
    m2ts = len(head) > 388 and head[4] == head[196] == head[388] == 0x47
    return ts or m2ts or head[:4] == b"\x00\x00\x01\xba"


def _decord_reader(path: Path):
    """A decord VideoReader, or None when decord cannot open the file, or should not (MPEG streams): PyAV then."""
    from decord import VideoReader, cpu

    if _is_mpeg_stream(path):
        return None
    _quiet()
    try:
        try:
            str(path).encode("utf-8")
            vr = VideoReader(str(path), ctx=cpu(0), num_threads=1)
        except UnicodeEncodeError:  # a name whose bytes are not UTF-8 (b'caf\xe9.avi'): decord cannot take it, so
            vr = _through_link(path, lambda name: VideoReader(name, ctx=cpu(0), num_threads=1))  # PyAV read it
    except Exception:  # (its frames differ from decord's by a grey level or two: the same file read otherwise)
        return None
    if len(vr) == 0:
        return None
    return vr


def _through_link(path: Path, open_: Callable[[str], T]) -> T:
    """``open_`` of a link of a plain name to ``path``, removed once it is open (the reader holds the file)."""
    import os
    import tempfile

    folder = tempfile.mkdtemp(prefix="mmfer-name-")
    link = os.path.join(folder, "clip" + (path.suffix if path.suffix.isascii() else ""))
    try:
        os.symlink(os.path.abspath(path), link)
        return open_(link)
    finally:
        if os.path.lexists(link):
            os.unlink(link)
        os.rmdir(folder)


def _decord_timing(vr) -> FrameTiming:
    try:
        stamps = np.asarray(vr.get_frame_timestamp(list(range(len(vr)))))[:, 0]
    except Exception:  # noqa: BLE001 - no timestamps: the header's rate
        stamps = None
    return frame_timing(len(vr), float(vr.get_avg_fps() or 0.0), stamps)


def clock_origin(container) -> float | None:
    """Time 0 of a file's analysis: where the first of the streams analysed (the first video and the first sound
    stream) starts. Not the container's start, which a subtitle, data or second sound stream may set earlier."""
    starts = [float(st.start_time * st.time_base) for st in [*list(container.streams.video)[:1],
                                                             *list(container.streams.audio)[:1]]
              if st.start_time is not None and st.time_base]
    return min(starts) if starts else None


def probe_video(path: str | Path, *, keep_reader: bool = False) -> VideoInfo:
    """Frame count, fps, size, duration and whether there is sound; a DecodeError explains unreadable files.

    ``keep_reader`` keeps decord's open reader in the info, so ``iter_frame_batches(path, info=info)`` does not
    open and index the file a second time (a few ms per clip; drop the info when done with it).
    """
    path = Path(path)
    _check_file(path)
    container = _av_open(path)
    try:
        if not container.streams.video:
            raise NoVideoStream(path, *no_stream_reason(path, "no video stream (audio only?)", "use it as an audio file, or drop it"))
        has_audio = bool(container.streams.audio)
        vs = container.streams.video[0]
        av_fps = float(vs.average_rate or vs.guessed_rate or 0.0)
        av_size = (int(vs.codec_context.width or 0), int(vs.codec_context.height or 0))
        declared = container.duration / 1e6 if container.duration else None
        declared_video = float(vs.duration * vs.time_base) if vs.duration and vs.time_base else None
        origin = clock_origin(container)
        late = (float(vs.start_time * vs.time_base) - origin
                if vs.start_time is not None and vs.time_base and origin is not None else 0.0)
    finally:
        container.close()
    check_frame_size(path, *av_size)  # from the header, before any frame is decoded
    vr = _decord_reader(path)
    if vr is not None:
        frames = len(vr)
        timing = _decord_timing(vr)
        height, width = vr[0].shape[:2] if av_size[0] == 0 else (av_size[1], av_size[0])
    else:  # decoded once here anyway (to count): the frames' own timestamps time them, as decord's do
        frames, stamps = _count_frames_av(path)
        timing = frame_timing(frames, av_fps, stamps)
        width, height = av_size
    if frames == 0:
        raise DecodeError(path, "truncated or corrupt: no decodable video frame", "re-copy or re-encode the clip")
    return VideoInfo(path=path, frames=frames, fps=timing.rate, width=width, height=height, duration=timing.duration,
                     has_audio=has_audio, declared_seconds=declared, declared_video_seconds=declared_video,
                     vfr=timing.vfr, notes=[timing.note] if timing.note else [], cut_short=cut_short(path),
                     reader=vr if keep_reader else None, timing=None if vr is not None else timing,
                     start_offset=late if SOUND_GAP_S < late <= MAX_SOUND_GAP_S else 0.0)


def _count_frames_av(path: Path) -> tuple[int, np.ndarray | None]:
    """Decodable frames and their presentation times (s; None where a frame has none), by decoding: only used
    when decord cannot open the clip (a browser's MediaRecorder WebM without duration or cues, for one)."""
    container = _av_open(path)
    n = 0
    stamps: list[float] | None = []
    try:
        for frame in container.decode(video=0):
            n += 1
            if stamps is not None:
                if frame.time is None:
                    stamps = None
                else:
                    stamps.append(float(frame.time))
    except Exception:
        pass
    finally:
        container.close()
    return n, (np.asarray(stamps, dtype=np.float64) if stamps else None)


def _batch_len(batch_size: int, height: int, width: int) -> int:
    return max(1, min(batch_size, MAX_BATCH_BYTES // max(1, height * width * 3)))


# Clips whose decoded source frames (up to the last one used) would exceed this are decoded by PyAV, one
# frame at a time, instead of decord (which buffers ahead): past about 3.5 s of 1080p or 40 s of 360p.
STREAM_ABOVE_BYTES = 512 << 20


def iter_frame_batches(
    path: str | Path,
    *,
    fps: float | None = None,
    max_frames: int | None = None,
    batch_size: int = 32,
    warnings: list[str] | None = None,
    info: VideoInfo | None = None,
    start: float = 0.0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (output frame indices int64 (B,), RGB frames uint8 (B,H,W,3)) batch by batch.

    ``fps`` resamples to that rate (indices are output frame numbers 0..T-1); ``max_frames`` caps T.
    ``start`` (s) skips the video before it: output frame k is the one shown at ``start`` + k / fps.
    A truncated tail ends the clip at the last decodable frame: the problem is appended to ``warnings``
    (and logged) instead of raised, so a damaged clip still gives its good part. ``info``, from
    ``probe_video(path, keep_reader=True)``, lends its open reader (taken from it) and frame size.
    """
    path = Path(path)
    _check_file(path)
    if info is not None and Path(info.path) != path:
        raise ValueError(f"iter_frame_batches({path}): info is of another file ({info.path})")
    av_fps = 0.0
    if info is None:  # probe_video checked the header's frame size; without it, check it here
        container = _av_open(path)
        try:
            vs = container.streams.video[0] if container.streams.video else None
            if vs is not None:
                check_frame_size(path, int(vs.codec_context.width or 0), int(vs.codec_context.height or 0))
                av_fps = float(vs.average_rate or vs.guessed_rate or 0.0)
        finally:
            container.close()
    lent = info.reader if info is not None else None
    vr = lent if lent is not None else _decord_reader(path)
    size = (info.height, info.width) if lent is not None and info.width > 0 else None
    if info is not None:
        info.reader = None
    if vr is None:
        if info is not None:
            timing = info.timing
        else:  # no probe lent its timing: one decoding pass for the frames' timestamps (files decord cannot open)
            n, stamps = _count_frames_av(path)
            timing = frame_timing(n, av_fps, stamps) if n else None
        src = None
        if timing is not None and (timing.vfr or timing.note):  # frames placed by their own timestamps
            src = timed_indices(timing, fps if fps and fps > 0 else timing.rate, max_frames, start)
            if len(src) == 0:
                return
        yield from _iter_frames_av(path, fps=fps, max_frames=max_frames, batch_size=batch_size, warnings=warnings,
                                   src=src, start=start)
        return
    timing = _decord_timing(vr)
    src_fps = timing.rate
    if timing.vfr:  # frames unevenly spaced: output frame k is the one shown at k / fps (the mean rate natively)
        src = timed_indices(timing, fps if fps and fps > 0 else timing.rate, max_frames, start)
    else:
        src = output_indices(len(vr), src_fps, fps, max_frames, start)
    if len(src) == 0:
        return
    if size is None:
        try:
            size = vr[0].shape[:2]
        except Exception:  # noqa: BLE001 - decord's own error type: cut inside its first frame
            raise DecodeError(path, "truncated or corrupt: not one video frame decodes",
                              "re-copy or re-encode the file") from None
    h, w = size
    if (int(src[-1]) + 1) * h * w * 3 > STREAM_ABOVE_BYTES:
        # decord decodes ahead of a slow consumer without bound (2.3 GB for 2 min of 720p while faces are
        # fitted); PyAV decodes one frame when asked, so memory stays at a few batches whatever the length.
        # Both names go: a decord reader kept alive here holds its buffers for the whole clip
        del vr, lent
        yield from _iter_frames_av(path, fps=fps, max_frames=max_frames, batch_size=batch_size, warnings=warnings,
                                   src=src if timing.vfr or timing.note else None, start=start)
        return
    step = _batch_len(batch_size, h, w)
    for start in range(0, len(src), step):
        want = src[start : start + step]
        try:
            frames = vr.get_batch(want.tolist()).asnumpy()
        except Exception:
            # decode one by one up to the first bad frame
            good = []
            for i in want.tolist():
                try:
                    good.append(vr[i].asnumpy())
                except Exception:
                    break
            frames = np.stack(good) if good else np.zeros((0, h, w, 3), np.uint8)
        if len(frames) < len(want):
            kept = start + len(frames)
            _warn(warnings, f"{path}: truncated or corrupt: " + (
                "not one video frame decodes" if not kept else
                f"breaks off after output frame {kept} of the {len(src)} planned; kept the {kept} before it"))
            if len(frames):
                yield np.arange(start, start + len(frames), dtype=np.int64), frames
            return
        yield np.arange(start, start + len(frames), dtype=np.int64), frames


def _warn(warnings: list[str] | None, message: str) -> None:
    if warnings is not None and message in warnings:
        return  # the same file read again (at another sample rate)
    log.warning(message)
    if warnings is not None:
        warnings.append(message)


def _iter_frames_av(path: Path, *, fps, max_frames, batch_size, warnings, src: np.ndarray | None = None,
                    start: float = 0.0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Sequential PyAV decoding for files decord cannot open (and long ones); resamples by frame rate, or takes
    ``src`` (the source frame of each output frame, from the frames' timestamps) where it is given.

    Only the frames used are converted to RGB: at 8 of 25 frames per second of 720p, conversion (3 ms a frame),
    not decoding (0.4 ms), was most of the cost. OpenCV converts in half the time, but its colours are one grey
    level off libswscale's (and decord's), and FFmpeg's decoder threads did not pay on 2 cores."""
    container = _av_open(path)
    try:
        if not container.streams.video:
            raise NoVideoStream(path, *no_stream_reason(path, "no video stream (audio only?)", "use it as an audio file, or drop it"))
        vs = container.streams.video[0]
        src_fps = float(vs.average_rate or vs.guessed_rate or 25.0)
        if src_fps > MAX_PLAUSIBLE_FPS:  # as frame_timing: an absurd header rate is not used
            src_fps = FALLBACK_FPS
        out_fps = fps if fps and fps > 0 else src_fps
        offset = start * src_fps if start > 0 else 0.0  # source frames skipped
        if src is not None:
            max_frames = len(src)
        elif out_fps != src_fps:  # same output length as the decord path: round(source frames * fps / source fps)
            n_est = int(vs.frames or 0) or int(round((container.duration or 0) / 1e6 * src_fps))
            if n_est > 0:
                t_out = max(0 if offset else 1, int(round((n_est - round(offset)) * out_fps / src_fps)))
                max_frames = t_out if max_frames is None else min(max_frames, t_out)
        batch: list[np.ndarray] = []
        k = 0  # next output frame
        first = 0
        step = None
        n_src = 0
        broken = False
        try:
            for frame in container.decode(video=0):
                # output frames k with round(start * src_fps + k * src_fps / out_fps) == n_src (or src[k] == n_src)
                # take this frame
                img = None
                while max_frames is None or k < max_frames:
                    if (int(src[k]) if src is not None else int(round(offset + k * src_fps / out_fps))) > n_src:
                        break
                    if img is None:
                        img = frame.to_ndarray(format="rgb24")
                        turns = int(round(getattr(frame, "rotation", 0) or 0)) // 90 % 4
                        if turns:  # a display rotation flag: upright, as decord returns the frame
                            img = np.ascontiguousarray(np.rot90(img, turns))
                        if step is None:
                            step = _batch_len(batch_size, *img.shape[:2])
                    batch.append(img)
                    k += 1
                    if len(batch) == step:
                        yield np.arange(first, first + len(batch), dtype=np.int64), np.stack(batch)
                        first += len(batch)
                        batch = []
                n_src += 1
                if max_frames is not None and k >= max_frames:
                    break
        except DecodeError:
            raise
        except Exception as e:
            broken = True
            _warn(warnings, f"{path}: truncated or corrupt after source frame {n_src} of {int(vs.frames or 0) or '?'} "
                            f"declared ({e}); kept the frames before it")
        if batch:
            yield np.arange(first, first + len(batch), dtype=np.int64), np.stack(batch)
        declared = int(vs.frames or 0)
        if not broken and n_src and declared > n_src and (max_frames is None or k < max_frames):
            _warn(warnings, f"{path}: truncated or corrupt: the header declares {declared} frames, "
                            f"only {n_src} could be decoded; kept those")
        if n_src == 0:
            raise DecodeError(path, "truncated or corrupt: no decodable video frame", "re-copy or re-encode the clip")
    finally:
        container.close()


T = TypeVar("T")


def in_background(items: Iterator[T], *, depth: int = 1) -> Iterator[T]:
    """Run an iterator in a helper thread, up to ``depth`` items ahead of the consumer.

    decord, PyAV and OpenCV release the GIL while they work, so the next batch decodes on the other core while
    this thread fits faces on the current one. An exception in the helper re-raises here, after the items it
    produced before; leaving the loop early stops the helper. Memory: ``depth`` + 2 items exist at most.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which decides
            put((done, e))
            return
        put((done, None))

    worker = threading.Thread(target=produce, name="mmfer-decode", daemon=True)
    worker.start()
    try:
        while True:
            item, error = q.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        worker.join(timeout=10)
        close = getattr(items, "close", None)
        if close is not None and not worker.is_alive():
            close()


def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> Callable[[], T]:
    """Start ``fn(*args, **kwargs)`` in a helper thread now; the returned function waits for it and gives its
    result or raises its exception. For work that releases the GIL (reading a clip's audio) alongside frames."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - re-raised by the caller of wait()
            box["error"] = e

    worker = threading.Thread(target=run, name="mmfer-io", daemon=True)
    worker.start()

    def wait() -> T:
        worker.join()
        if "error" in box:
            raise box["error"]
        return box["result"]

    return wait


def read_frames(path: str | Path, *, fps: float | None = None, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """All frames (T,H,W,3) uint8 RGB and their frame rate; fine for short clips (use iter_frame_batches for movies)."""
    info = probe_video(path, keep_reader=True)
    batches = [f for _, f in iter_frame_batches(path, fps=fps, max_frames=max_frames, info=info)]
    # natively, the rate of the grid the frames were taken on: the mean rate of a variable-rate file (its header's
    # rate would time them wrong by a second in twelve), the header's for evenly spaced frames
    out_fps = float(fps) if fps is not None and fps > 0 else float(info.fps)
    if not batches:
        raise DecodeError(path, "truncated or corrupt: no decodable video frame", "re-copy or re-encode the clip")
    return np.concatenate(batches), out_fps


def read_audio(path: str | Path, *, sample_rate: int = 16000, max_seconds: float | None = None) -> np.ndarray:
    """Mono float32 (N,) at ``sample_rate`` from a video or an audio file; no audio stream gives length 0.

    Decoded by PyAV, chunk by chunk, exactly as ``mmfer predict`` streams sound (``iter_audio_chunks``), so a
    model is trained and scored on the samples it is served (decord's differed: the model card says how).
    ``max_seconds`` stops decoding there; at most ``MAX_READ_SECONDS``, with a warning (a small file of hours of
    silence took gigabytes; predict streams a long recording)."""
    path = Path(path)
    _check_file(path)
    _quiet()
    limit = int(round(min(MAX_READ_SECONDS, MAX_READ_SECONDS if max_seconds is None else max_seconds) * sample_rate))
    chunks = list(iter_audio_chunks(path, sample_rate=sample_rate, max_samples=limit + 1))  # +1: was it cut?
    audio = np.ascontiguousarray(np.concatenate(chunks)[:limit], dtype=np.float32) if chunks else np.zeros(0, np.float32)
    if sum(c.size for c in chunks) > limit and (max_seconds is None or max_seconds > MAX_READ_SECONDS):
        log.warning("%s: its sound is longer than %d minutes; the rest is not read", path, MAX_READ_SECONDS // 60)
    return audio


MAX_READ_SECONDS = 3600  # one hour of sound in memory at most (230 MB at 16 kHz)


# a jump in the sound's timestamps longer than this is silence to put in (shorter ones are codec delays and
# rounding, left as they are, so ordinary files decode exactly as before); longer than MAX_SOUND_GAP_S it is taken
# for a broken clock (a wrapped or reset timestamp), not a pause, and nothing is put in
SOUND_GAP_S = 0.1
MAX_SOUND_GAP_S = 600.0


def iter_audio_chunks(path: str | Path, *, sample_rate: int = 16000, start: float = 0.0,
                      max_samples: int | None = None, warnings: list[str] | None = None,
                      notes: list[str] | None = None) -> Iterator[np.ndarray]:
    """Mono float32 chunks at ``sample_rate``, decoded as they are asked for: a whole film's sound never sits in
    memory. ``start`` (s) drops what comes before; ``max_samples`` stops after that many samples. A file with
    video and no sound yields nothing; sound that breaks off ends the stream (a warning says where) unless
    nothing was read, which raises a DecodeError. ``notes`` gets what the reader should know about the sound that
    is no decoding fault: a recording sampled below ``sample_rate``, sound tracks after the first."""
    import av

    path = Path(path)
    _check_file(path)  # an empty file is said as such, not as a corrupt one of its extension's format
    container = _av_open(path)
    try:
        if not container.streams.audio:
            if not container.streams.video:
                raise DecodeError(path, *no_stream_reason(path, "no audio or video stream", "check that this is a media file; re-copy or re-encode it"))
            return
        native = int(container.streams.audio[0].rate or 0)
        if not container.streams.video and (cut := cut_short(path)):  # a video's own checks say it for the file
            _warn(warnings, f"{path}: file looks truncated: {cut}; analysed the sound that is there, re-copy the file")
        found = []
        if 0 < native < sample_rate:  # resampling cannot bring back what was never recorded
            found.append(f"sound recorded at {native} Hz, under the {sample_rate} Hz it is analysed at: nothing "
                         f"above {native // 2} Hz is in it (telephone-band sound reads less reliably)")
        if len(container.streams.audio) > 1:  # a second language or commentary track is never heard
            found.append(f"{len(container.streams.audio)} sound tracks: only the first is analysed")
        if is_audio(path) and any(not (v.disposition & av.stream.Disposition.attached_pic)
                                  for v in container.streams.video):  # a cover picture is no video
            found.append(f"holds a video stream, but its {path.suffix} name makes it a sound file: only the sound is "
                         "analysed; give it its video extension to analyse its faces too")
        for note in found if notes is not None else ():
            log.info("%s: %s", path, note)
            notes.append(note)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        skip = int(round(start * sample_rate)) if start > 0 else 0
        left = max_samples
        taken = decoded = 0
        # the sound is placed on the file's clock: silence where it starts after the container does (a video
        # whose sound comes in late) or where its packets stop for a while (a hole), so it stays with the picture
        origin = clock_origin(container)
        due = 0.0  # s of sound given so far (samples and silence): where the next frame falls if nothing is missing
        filled = [0.0, 0.0, 0]  # seconds of silence before the sound comes in, in its holes; holes

        def silence(seconds: float) -> Iterator[Any]:
            n = int(round(seconds * sample_rate))
            for i in range(0, n, 10 * sample_rate):  # at most 10 s at a time: memory stays flat
                yield np.zeros(min(10 * sample_rate, n - i), np.float32)

        def cut(frames, *, real: bool = True) -> Iterator[np.ndarray]:
            nonlocal skip, left, taken, decoded
            for f in frames:
                a = f.to_ndarray().reshape(-1) if real else f
                decoded += a.size if real else 0
                if skip:
                    dropped = min(skip, a.size)
                    a, skip = a[dropped:], skip - dropped
                if left is not None:
                    a, left = a[:left], left - min(left, a.size)
                if a.size:
                    taken += a.size
                    yield np.ascontiguousarray(a, dtype=np.float32)

        try:
            for frame in container.decode(audio=0):
                if origin is not None and frame.time is not None:
                    gap = frame.time - origin - due
                    if SOUND_GAP_S < gap <= MAX_SOUND_GAP_S:
                        yield from cut(resampler.resample(None))  # what the resampler holds comes before the gap
                        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
                        yield from cut(silence(gap), real=False)
                        if due == 0.0:
                            filled[0] = gap
                        else:
                            filled[1] += gap
                            filled[2] += 1
                        due += gap  # counted against what was given, so short dropouts that add up are filled too
                    elif gap > MAX_SOUND_GAP_S:  # a broken clock, not a pause: nothing put in, counted from here
                        due = frame.time - origin
                    due += frame.samples / (frame.sample_rate or native or 1)
                yield from cut(resampler.resample(frame))
                if left is not None and left <= 0:
                    return
        except av.error.FFmpegError as e:
            if not taken:
                raise DecodeError(path, f"truncated or corrupt audio: {e}", "re-copy or re-encode the file") from None
            _warn(warnings, f"{path}: audio truncated or corrupt after {taken / sample_rate:.1f} s ({e}); kept "
                            "the sound before it")
        yield from cut(resampler.resample(None))
        if (filled[0] or filled[2]) and notes is not None:
            said = ([f"the sound comes in at {filled[0]:.2f} s"] if filled[0] else []) + (
                [f"its timestamps stop for {filled[1]:.2f} s in {filled[2]} place(s)"] if filled[2] else [])
            note = f"{' and '.join(said)}: heard as silence there, so the sound stays in step with the picture"
            log.info("%s: %s", path, note)
            notes.append(note)
        if not decoded and not container.streams.video:  # text saved as .flac, a header without samples
            raise DecodeError(path, "no sound decodes from it (not the format its extension says, or no samples)",
                              "check the file; re-copy or re-encode it")
    finally:
        container.close()
