"""One clip through the frame pipeline: checked, decoded in batches, tracked, aligned, with its sound.

``process_clip`` makes a clip's cache arrays for ``mmfer preprocess``; ``iter_face_batches`` is the same
pipeline batch by batch, which predict's streaming analysis uses, so training and prediction see the same
crops. Every problem with an input file becomes a reason a person can act on, never an exception that stops a
corpus.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from mmfer.data.cache import ClipRecord, NpyAppender, PreprocessSettings
from mmfer.data.index import ClipEntry
from mmfer.errors import MmferError
from mmfer.faces.backends import get_backend
from mmfer.faces.base import FaceBackendError

# Full decoded frames per batch (bytes); a 480x360 clip gets 32-frame batches, a 4K clip 3. Decoding runs
# one batch ahead (video.in_background), so about three batches exist at once.
FRAME_BUDGET_BYTES = 96 * 1024 * 1024
MAX_BATCH = 32
# Frames smaller than this on a side cannot hold a face worth finding (a 1x1 video): a failed clip that says so.
MIN_FRAME_SIDE = 16
# Fewer landmark fits per second than this (a low --fps, or a clip of few frames a second, with fit_every > 1)
# earns a warning: expressions change within a few hundred milliseconds.
MIN_FITS_PER_SECOND = 5
# sound that outlasts the picture by more than this (s) is said: the audio branches learn from a stretch no face
# branch sees (AFEW's clips have both throughout)
LONGER_SOUND_S = 1.0


def _source_stat(path: Path) -> tuple[int, float]:
    try:
        st = path.stat()
    except OSError:
        return -1, -1.0
    return int(st.st_size), float(st.st_mtime)


def _batch_size(width: int, height: int, fit_every: int = 1) -> int:
    """Frames per batch within the memory budget; a multiple of ``fit_every`` where it fits, so batches end on a
    frame the tracker fits anyway."""
    n = MAX_BATCH
    if width > 0 and height > 0:
        n = int(max(1, min(MAX_BATCH, FRAME_BUDGET_BYTES // (width * height * 3))))
    return n - n % fit_every if n >= fit_every else n


def _failed(rec: ClipRecord, reason: str, t0: float) -> tuple[None, dict[str, Any], ClipRecord]:
    rec.status = "failed"
    rec.reason = reason
    rec.seconds = round(time.perf_counter() - t0, 3)
    return None, {}, rec


def _looks_truncated(info: Any, video_seconds: float, audio_seconds: float, *, audio_capped: bool) -> str:
    """What a cut-off file still declares ("" when nothing says so): first its byte structure (a header or a
    piece that runs past the end of the file, ``VideoInfo.cut_short``), then the video stream's own duration
    against the frames decoded (timed by their timestamps), else the container's against the longer of video
    and sound, since the container's duration is its longest stream's (a 3-s video with 10 minutes of sound)."""
    if info.cut_short:
        return info.cut_short
    if info.declared_video_seconds:
        declared, what, decoded = info.declared_video_seconds, "the video stream declares", video_seconds
    elif info.declared_seconds and not audio_capped:
        declared, what, decoded = info.declared_seconds, "the container declares", max(video_seconds, audio_seconds)
    else:
        return ""
    return f"{what} {declared:.1f} s" if declared > 1.5 * decoded + 0.5 else ""


def open_video(path: Path, *, size: int | None = None) -> Any:
    """``probe_video(path, keep_reader=True)`` after the checks every clip gets first (exists, a regular file,
    not empty, frames big enough to hold a face); a MmferError names the file and the problem."""
    from mmfer.data.video import DecodeError, NoUsablePicture, probe_video

    size = _source_stat(path)[0] if size is None else size
    if size < 0:
        raise MmferError(f"{path}: file not found; check that it still exists (a list's row: fix its path or remove "
                         "the row)")
    if not path.is_file():
        raise MmferError(f"{path}: not a regular file")
    if size == 0:
        raise MmferError(f"{path}: file is empty (0 bytes); re-copy or re-download it")
    try:
        info = probe_video(path, keep_reader=True)
    except DecodeError:
        raise
    except Exception as e:  # noqa: BLE001 - a decoder crash on one file must not stop the corpus
        raise MmferError(f"{path}: cannot read as a video ({type(e).__name__}: {e})") from e
    if 0 < min(info.width, info.height) < MIN_FRAME_SIDE:
        raise NoUsablePicture(path, f"frames are {info.width}x{info.height} pixels, too small to hold a face (at "
                              f"least {MIN_FRAME_SIDE} px a side)", "re-encode it at its real size or drop it")
    return info


@dataclass
class FaceBatch:
    """One batch of decoded frames after tracking and alignment: what ``iter_face_batches`` yields."""

    index: np.ndarray  # output frame numbers (B,), counted from the first frame analysed
    track: Any  # FaceTrack of the B frames
    faces: np.ndarray  # aligned RGB crops (B, crop_size, crop_size, 3), black where no face
    frame_hw: tuple[int, int]  # the frames' size as decoded (rotation applied)


def make_tracker(settings: PreprocessSettings):
    """The face tracker of ``settings`` (its backend loaded once per process)."""
    from mmfer.faces.track import FaceTracker

    return FaceTracker(get_backend(settings.face_backend), detect_max_side=settings.detect_max_side,
                       detect_every=settings.detect_every, fit_every=settings.fit_every)


def iter_face_batches(path: Path, settings: PreprocessSettings, *, info: Any, warnings: list[str],
                      stops: list[str], overlap_io: bool = True, start: float = 0.0, tracker: Any = None,
                      ) -> Iterator[FaceBatch]:
    """Decode, track and align a video batch by batch: the frame pipeline that ``process_clip`` (the cache) and
    predict's streaming analysis share, so both see the same crops.

    ``info`` is ``probe_video(path, keep_reader=True)``; decoder notes go to ``warnings``. A stream that breaks
    off after some frames ends the iteration with a note in ``stops`` saying after how many; one that gives no
    frame at all raises a DecodeError. ``start`` (s) skips the video before it; ``tracker`` (from
    ``make_tracker``) may be passed in to read its timings. ``overlap_io`` decodes the next batch in a helper
    thread while this one is tracked."""
    from mmfer.data.video import DecodeError, in_background, iter_frame_batches
    from mmfer.faces.align import align_frames

    tracker = tracker if tracker is not None else make_tracker(settings)
    n_frames = 0
    try:
        batches = iter_frame_batches(path, fps=settings.fps, max_frames=settings.max_frames,
                                     batch_size=_batch_size(info.width, info.height, settings.fit_every),
                                     warnings=warnings, info=info, start=start)
        for idx, frames in (in_background(batches) if overlap_io else batches):
            if frames.ndim != 4 or frames.shape[-1] != 3 or min(frames.shape[1:3]) < MIN_FRAME_SIDE:
                raise DecodeError(path, f"the decoder gives frames of shape {tuple(frames.shape[1:])}, not colour "
                                        f"images of at least {MIN_FRAME_SIDE} px a side", "re-encode the video")
            track = tracker.process(frames)
            aligned = align_frames(frames, track.landmarks, track.mask, crop_size=settings.crop_size)
            hw = (int(frames.shape[1]), int(frames.shape[2]))
            del frames
            n_frames += len(idx)
            yield FaceBatch(index=np.asarray(idx), track=track, faces=aligned, frame_hw=hw)
    except DecodeError as e:
        if n_frames == 0:
            raise
        stops.append(f"decoding stopped after {n_frames} frame(s), the rest is lost: {e}")
    except FaceBackendError:  # the detector's failure, not the file's: said as its own
        raise
    except Exception as e:  # noqa: BLE001 - a decoder crash mid-file keeps what came before it
        if n_frames == 0:
            raise DecodeError(path, f"cannot decode video frames ({type(e).__name__}: {e})") from e
        stops.append(f"decoding stopped after {n_frames} frame(s) ({type(e).__name__}: {e})")


def process_clip(
    entry: ClipEntry, settings: PreprocessSettings = PreprocessSettings(), *, overlap_io: bool = True,
    spool: Path | None = None, audio_seconds: float | None = None,
) -> tuple[dict[str, np.ndarray] | None, dict[str, Any], ClipRecord]:
    """Decode, track, align and read audio of one clip: (arrays, meta, record); arrays is None when failed.

    Never raises for a bad input file: the record says ``failed`` and why, or ``ok`` with warnings.
    ``overlap_io`` decodes the next frame batch and the audio in helper threads while faces are fitted: it
    pays where a core would otherwise idle, and costs a few percent where every core already has a worker.
    ``spool``: a folder where the face crops are written batch by batch as ``faces.npy`` (returned as a
    ``cache.SpooledNpy``: the file, its shape and dtype, an array through ``np.asarray``, no file held open),
    so memory does not grow with the clip's length; without it they are kept in memory. ``audio_seconds``
    reads only that much of the sound (prediction, which analyses the first minutes only).
    """
    from mmfer.data.audio import sanitise_audio
    from mmfer.data.video import DecodeError, in_thread, read_audio
    from mmfer.faces.track import FaceTrack

    t0 = time.perf_counter()
    path = Path(entry.path)
    size, mtime = _source_stat(path)
    rec = ClipRecord(
        clip_id=entry.clip_id,
        split=entry.split,
        label=entry.label,
        path=os.path.abspath(path),  # absolute (links not resolved): the record stays valid from any cwd
        status="failed",
        settings_hash=settings.hash,
        settings=settings.to_dict(),
        source_size=size,
        source_mtime=mtime,
    )
    try:
        info = open_video(path, size=size)
    except MmferError as e:
        return _failed(rec, str(e), t0)

    warnings: list[str] = []
    if overlap_io:  # decodes alongside the frames
        audio_result = in_thread(read_audio, path, sample_rate=settings.sample_rate, max_seconds=audio_seconds)
    else:
        def audio_result() -> np.ndarray:
            return read_audio(path, sample_rate=settings.sample_rate, max_seconds=audio_seconds)
    decode_warnings: list[str] = []
    crops: list[np.ndarray] = []
    crop_shape = (settings.crop_size, settings.crop_size, 3)
    spooled = NpyAppender(spool / "faces.npy", dtype=np.uint8, item_shape=crop_shape) if spool is not None else None
    tracks: list[Any] = []
    n_frames = 0
    frame_hw: tuple[int, int] | None = None
    try:
        for batch in iter_face_batches(path, settings, info=info, warnings=decode_warnings, stops=warnings,
                                       overlap_io=overlap_io):
            frame_hw = frame_hw or batch.frame_hw
            if spooled is not None:
                spooled.append(batch.faces)
            else:
                crops.append(batch.faces)
            tracks.append(batch.track)
            n_frames += len(batch.index)
    except DecodeError as e:
        return _failed(rec, str(e), t0)
    except FaceBackendError as e:  # the whole clip: a face track with a gap where the detector broke would mislead
        return _failed(rec, f"{path}: {e}", t0)
    finally:
        if spooled is not None and n_frames == 0:
            spooled.abort()

    warnings.extend(decode_warnings)
    warnings.extend(info.notes)  # e.g. a header frame rate no camera gives, and the rate used instead
    if n_frames == 0:
        if decode_warnings:
            return _failed(rec, decode_warnings[0], t0)
        if info.has_audio and not info.width:
            reason = f"{path}: no video stream (audio-only file); use the audio branch's audio-file input for it"
        else:
            reason = f"{path}: no video frames could be decoded (empty or broken video stream)"
        return _failed(rec, reason, t0)

    try:
        audio = np.asarray(audio_result(), dtype=np.float32).reshape(-1)
    except DecodeError as e:
        audio = np.zeros(0, np.float32)
        warnings.append(f"audio unreadable, stored empty: {e}")
    except Exception as e:  # noqa: BLE001
        audio = np.zeros(0, np.float32)
        warnings.append(f"audio unreadable, stored empty ({type(e).__name__}: {e})")
    if audio.size == 0 and not any(w.startswith("audio unreadable") for w in warnings):
        warnings.append("no audio stream")
    truncated = _looks_truncated(info, n_frames / float(settings.fps or info.fps), audio.size / settings.sample_rate,
                                 audio_capped=audio_seconds is not None)
    if truncated and not settings.max_frames and not decode_warnings:
        warnings.append(f"file looks truncated: {n_frames} frame(s) ({n_frames / float(settings.fps or info.fps):.1f} s)"
                        f" decoded but {truncated}; kept what could be read, re-copy the file")
    audio, audio_note = sanitise_audio(audio)  # one inf sample would make every feature, loss and score NaN
    if audio_note:
        warnings.append(audio_note)

    track = FaceTrack.concat(tracks) if len(tracks) > 1 else tracks[0]
    mask = np.asarray(track.mask, dtype=bool).reshape(-1)
    landmarks = np.asarray(track.landmarks, dtype=np.float32)
    boxes = np.asarray(track.boxes, dtype=np.float32)
    if spooled is not None:
        faces = spooled.close()
    else:
        faces = np.concatenate(crops, axis=0) if len(crops) > 1 else crops[0]
        faces = np.ascontiguousarray(faces, dtype=np.uint8)
    n_face = int(mask.sum())
    if n_frames == 1:
        warnings.append("only one video frame")
    if n_face == 0:
        warnings.append("no face found in any frame (audio and frames are kept)")

    fps = float(settings.fps or info.fps)
    if not settings.fps and settings.fit_every > 1 and fps / settings.fit_every < MIN_FITS_PER_SECOND:
        # the run warns for a low --fps; a clip of few frames a second of its own is said here
        warnings.append(f"{fps:g} frames/s with --fit-every {settings.fit_every}: landmarks fitted only every "
                        f"{settings.fit_every / fps:.2f} s and interpolated between (--fit-every 1 fits every frame)")
    picture_s, sound_s = n_frames / fps, audio.size / settings.sample_rate
    capped = bool(settings.max_frames) and n_frames >= settings.max_frames  # --max-frames cut the picture, not the sound
    if n_frames > 1 and not capped and sound_s > picture_s + LONGER_SOUND_S:  # sound branches learn what no face saw
        warnings.append(f"the sound lasts {sound_s:.1f} s and the picture {picture_s:.1f} s: the audio branches "
                        "hear more of the clip than the face branches see")
    arrays = {"faces": faces, "landmarks": landmarks, "boxes": boxes, "mask": mask, "audio": audio}
    rec.status = "ok"
    rec.reason = ""
    rec.frames = n_frames
    rec.face_frames = n_face
    rec.audio_seconds = round(audio.size / settings.sample_rate, 3)
    rec.fps = fps
    rec.warnings = warnings
    rec.seconds = round(time.perf_counter() - t0, 3)
    meta = {
        "clip_id": entry.clip_id,
        "split": entry.split,
        "label": entry.label,
        "path": os.path.abspath(path),  # the manifest's name for it (source_size and source_mtime too)
        "source_size": size,
        "source_mtime": mtime,
        "fps": fps,
        "frames": n_frames,
        "face_frames": n_face,
        # the frames' size as decoded, which landmarks and boxes refer to (a phone video stored sideways with
        # a rotation flag is decoded upright: the container's width and height are swapped)
        "width": frame_hw[1] if frame_hw else info.width,
        "height": frame_hw[0] if frame_hw else info.height,
        "source_fps": info.fps,
        "sample_rate": settings.sample_rate,
        "audio_seconds": rec.audio_seconds,
        "settings": settings.to_dict(),
        "settings_hash": settings.hash,
        "warnings": warnings,
    }
    return arrays, meta, rec
