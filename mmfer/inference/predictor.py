"""The predictor: a loaded bundle that turns one video, face image or sound file into a row (``Prediction``).

- **Videos** are analysed whole, as a stream (``mmfer.inference.stream``): decoded, tracked and aligned by
  preprocessing's frame pipeline at a reduced frame rate (the bundle's ``decode`` settings), scored batch by
  batch and cut into segments (4 s by default), each fused like a clip: a ``face_image`` model per aligned
  frame, pooled over the segment's frames with a face; cache-trained branches (C3D, CNN-LSTM, landmark BRNN)
  through their own dataset code; audio models over the segment's sound. The file's row is the
  length-weighted mean of its segments (``mmfer.inference.segments``).
- **Face images**: a small, roughly square image (FER2013-like, at most 100 px) is taken as the face; a
  larger photo goes through the face detector and alignment first ("no face found" otherwise).
- **Audio files** (wav, flac, mp3, ...) go through the audio model alone, streamed and segmented the same way.
- Modalities are fused with the bundle's weights, renormalised over what a clip has: no face means
  audio alone, no (or silent) audio means faces alone, neither gives uniform probabilities and no prediction.
- A file that cannot be read gets an error row (empty ``predicted`` and probabilities, the reason in
  ``warning``) and the run goes on.

Model inputs are built by the same functions as in training (``face_tensor``, the cache datasets,
``log_mel`` standardised by ``LogMelDataset``), never by a copy, so a model sees what it was trained on.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from mmfer.inference.bundle import Branch, Bundle, load_bundle
from mmfer.data.cache import CachedClip, clip_id_from_name
from mmfer.data.index import (
    AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, case_key, is_audio, is_image, is_video, iter_files,
)
from mmfer.errors import MmferError
from mmfer.inference.inputs import FRAME_POOLINGS, audio_clip, memory_dataset
from mmfer.inference.result import PREDICTION_COLUMNS, Prediction, PredictResult  # noqa: F401 (importable here too)
from mmfer.inference.segments import Segment, SegmentSettings
from mmfer.labels import NUM_CLASSES
from mmfer.models.common import conv2d_channels_last, fold_batchnorm
from mmfer.text import safe_text
from mmfer.data.images import MAX_IMAGE_PIXELS, check_image_size, read_image_rgb  # noqa: F401 - re-exported

if TYPE_CHECKING:
    from mmfer.inference.stream import VideoAnalysis

log = logging.getLogger(__name__)

# Images up to this side and about square are taken as face crops as they are (FER2013 is 48x48).
TIGHT_CROP_MAX_SIDE = 100
TIGHT_CROP_ASPECT = (0.8, 1.25)
TIGHT_CROP_MIN_SIDE = 16  # smaller is no face photo (FER2013's faces are 48 px)
BLANK_IMAGE_STD = 2.0  # grey levels: an image flatter than this shows nothing, let alone a face
FORWARD_BATCH = 256
WARM_UP_TIMEOUT_S = 60.0  # the sound thread's warm-up; past it the load goes on without


# ---------------------------------------------------------------- inputs
# what find_inputs says an input is: the three scored kinds, then those that become error rows
FILE_KINDS = ("video", "audio", "image", "unsupported", "missing", "stdin", "special", "folder")


def find_inputs(paths: Iterable[str | Path]) -> list[tuple[Path, str]]:
    """(path, kind) for every input: files as given, folders searched recursively for videos, images and audio.

    ``kind`` is video, image or audio; ``missing`` (no such path) and ``unsupported`` (a file given by
    name that is none of those) become error rows. Hidden files and other files inside folders are skipped.
    """
    out: list[tuple[Path, str]] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():  # searched once: each folder that cannot be read is said once
            files = list(iter_files(p, lambda f: _media_kind(f) is not None or not f.name.startswith(".")))
            found = [f for f in files if _media_kind(f)]
            if not found:
                log.warning("%s: no video, image or audio files inside", p)
            _say_left_out(p, [f for f in files if not _media_kind(f)])
            out.extend((f, _media_kind(f)) for f in found)
        elif p.is_file():
            out.append((p, _media_kind(p) or "unsupported"))
        else:
            out.append((p, _not_a_file(p)))
    return _once_each(out)


def _once_each(inputs: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """One input per file on disk and name: a file given twice (``a/v.mp4`` and ``a/../a/v.mp4``), or reached
    again through a link of the same name, is analysed once (under the first path) and said, so no figure over the
    rows counts it twice. Links of other names keep their rows: they are other clip ids (a submission needs each)."""
    seen: dict[tuple[int, int, str], Path] = {}
    out, again = [], []
    for path, kind in inputs:
        try:
            st = path.stat() if kind in ("video", "image", "audio", "unsupported") else None
        except OSError:
            st = None
        key = (st.st_dev, st.st_ino, path.name) if st is not None and st.st_ino else None
        if key is not None and key in seen:
            again.append((path, seen[key]))
            continue
        if key is not None:
            seen[key] = path
        out.append((path, kind))
    if again:
        log.warning("%d input(s) are files given already (twice, or through a link), analysed once: %s",
                    len(again), "; ".join(f"{safe_text(a)} is {safe_text(b)}" for a, b in again[:5])
                    + (" ..." if len(again) > 5 else ""))
    return out


def _say_left_out(folder: Path, files: list[Path]) -> None:
    """Files of a folder that are no video, image or audio kind predict knows, counted by extension: a scorer
    must not miss a camera's .xyz files without a word."""
    from collections import Counter

    others = Counter(f.suffix.lower() or "(none)" for f in files)
    if others:
        log.warning("%s: %d file(s) of other kinds left out (%s); the kinds analysed are listed in `mmfer predict "
                    "--help`", folder, sum(others.values()),
                    ", ".join(f"{n} {ext}" for ext, n in others.most_common(5)))


def _not_a_file(p: Path) -> str:
    """``stdin`` for '-', ``folder``, ``special`` for a pipe, device or socket (``/dev/stdin``, a FIFO), else
    ``missing``."""
    if str(p) == "-":
        return "stdin"
    return "folder" if p.is_dir() else "special" if os.path.exists(p) else "missing"


def _media_kind(path: Path) -> str | None:
    return "video" if is_video(path) else "image" if is_image(path) else "audio" if is_audio(path) else None


def check_unique_ids(inputs: Sequence[tuple[Path, str]]) -> None:
    """A submission names each clip once: refuse two inputs with the same clip id (file name without extension)."""
    seen: dict[str, Path] = {}
    dupes = []
    for path, _ in inputs:
        cid = clip_id_from_name(path.stem)
        # Clip.txt and clip.txt (and an é composed or not) are one file on Windows and macOS, and to submit --check
        key = case_key(cid)
        if key in seen:
            dupes.append(f"{cid} ({seen[key]} and {path})")
        else:
            seen[key] = path
    if dupes:
        raise MmferError(f"--submission: {len(dupes)} clip id(s) appear twice (letter case aside), and a submission "
                         f"has one <clip_id>.txt per clip: {'; '.join(dupes[:5])}{' ...' if len(dupes) > 5 else ''}. "
                         "Rename the files or predict the folders separately")


# ---------------------------------------------------------------- the predictor
class Predictor:
    """A loaded bundle on a device, predicting one file at a time (``predict`` loops it over many).

    Creating one limits numpy's BLAS to one thread for the process (``one_blas_thread``: its spinning threads
    slowed the models), and a short clip's sound is scored in a helper thread beside its frames."""

    def __init__(self, model: str | Path | Bundle = "default", *, device: str | torch.device = "auto",
                 segments: SegmentSettings = SegmentSettings(), start: float = 0.0,
                 duration: float | None = None, frame_pooling: str | None = None, speech_check: bool = True,
                 face_backend: str | None = None, blas_threads: int | None = 1) -> None:
        """``segments``: how videos and sound files are cut (4-s fixed windows by default); ``start`` and
        ``duration`` (s) limit the span of each that is analysed (default: all of it); ``frame_pooling``
        (mean, log_mean, confidence; see ``pool_frames``) replaces the model's own for its single-image face
        branches, for any model: a bundle, a RUN or a FUSE folder. ``speech_check``: the voice models read only
        sound in which speech is heard (``mmfer.inference.speech``); False reads any sound that is not silent.
        ``face_backend`` replaces the model's face detector and landmarks (``decode.face_backend``), one of
        ``mmfer.faces.backends.BACKENDS`` or your own (``register_backend``): its face branches learnt from the
        faces their own detector found, so measure before relying on another. ``blas_threads``: the thread limit
        set on numpy's and scipy's BLAS for the process (1: mmfer's small matrices gain nothing from more, and
        their spinning threads slowed the models); None leaves an application's own setting as it is."""
        from mmfer.engine.device import one_blas_thread, resolve_device

        if blas_threads is not None and (isinstance(blas_threads, bool) or not isinstance(blas_threads, int)
                                         or blas_threads < 1):
            raise MmferError(f"blas_threads={blas_threads!r}: a number of threads from 1, or None to leave them")
        self.set_span(segments=segments, start=start, duration=duration)
        self.bundle = model if isinstance(model, Bundle) else load_bundle(model)
        self.speech_check = bool(speech_check)
        if self.speech_check and self.bundle.of("audio"):  # a missing package is said now, not at the first file
            from mmfer.inference.speech import _model

            _model()
        self.frame_pooling: str | None = None  # another pooling than the face models' own, if given
        if frame_pooling is not None:
            if frame_pooling not in FRAME_POOLINGS:
                raise MmferError(f"--frame-pooling {frame_pooling!r}: choose {', '.join(FRAME_POOLINGS)}")
            import dataclasses

            from mmfer.inference.bundle import pooling_override

            own = {b.options.get("frame_pooling") for b in self.bundle.branches if b.kind == "face_image"}
            self.frame_pooling = pooling_override(frame_pooling, own)  # the model's own: no change
            self.bundle = dataclasses.replace(self.bundle, branches=[  # the caller's bundle stays as it was
                dataclasses.replace(b, options={**b.options, "frame_pooling": frame_pooling})
                if b.kind == "face_image" else b for b in self.bundle.branches])
        self.face_backend: str | None = None  # another detector than the model's own, if given
        if face_backend is not None:
            self._use_face_backend(face_backend)
        self.device = resolve_device(device)
        self.bundle.to(self.device)
        for b in self.bundle.branches:  # 2D CNNs run 20-30% faster channels-last, BatchNorm folded, on a CPU
            if b.kind in ("face_image", "logmel"):
                fold_batchnorm(b.model)
                conv2d_channels_last(b.model)
        if self.bundle.of("face"):  # the face detector and landmark model load now (about 100 MB), not mid-run
            from mmfer.faces.backends import get_backend

            get_backend(self.bundle.decode.face_backend)
        self._warm_up()
        if blas_threads is not None:  # after the warm-up, which loads the libraries (scipy's own OpenBLAS among them)
            one_blas_thread(blas_threads)

    def _use_face_backend(self, name: str) -> None:
        import dataclasses

        from mmfer.faces.backends import backend_name

        key = backend_name(name)
        own = self.bundle.decode.face_backend
        if key == own:  # the model's own: nothing replaced
            return
        self.face_backend = key
        if self.bundle.of("face"):
            log.warning("face backend %s instead of the model's own %s: its face branches learnt from the faces %s "
                        "found and cut, so another detector's crops may read worse; measure it on labelled clips "
                        "(--labels-from, mmfer evaluate) before relying on it", key, own, own)
        self.bundle = dataclasses.replace(self.bundle, decode=dataclasses.replace(self.bundle.decode, face_backend=key))

    def __repr__(self) -> str:
        return (f"Predictor({str(self.bundle.source)!r}, branches={[b.name for b in self.bundle.branches]}, "
                f"device={str(self.device)!r}, speech_check={self.speech_check})")

    def _warm_up(self) -> None:
        """One-time costs (kernel selection, lazy imports) paid at load, not by the first file: each branch
        scores a blank input once; the audio branches also in the thread that scores short videos' sound
        (``mmfer.inference.stream.sound_thread``), which has kernels of its own."""
        self._warm_up_branches("face_image")
        self._warm_up_branches("audio")
        if self.bundle.of("face") and self.bundle.of("audio"):
            from mmfer.inference.stream import sound_thread

            try:
                sound_thread().submit(self._warm_up_branches, "audio").result(timeout=WARM_UP_TIMEOUT_S)
            except Exception as e:  # noqa: BLE001 - a warm-up must never stop a load
                log.debug("warm-up of the sound thread skipped: %s", e)

    def _warm_up_branches(self, which: str) -> None:
        for b in self.bundle.branches:
            try:
                if which == "face_image" and b.kind == "face_image":
                    self.face_frames(b, np.zeros((1, 48, 48, 3), np.uint8), aligned=False, views=1)
                elif which == "audio" and b.modality == "audio":
                    quiet = np.random.default_rng(0).normal(0, 0.01, b.sample_rate).astype(np.float32)
                    self.clip_probs(b, [audio_clip(quiet, "warm-up")])
            except Exception as e:  # noqa: BLE001 - a warm-up must never stop a load; real inputs will say why
                log.debug("warm-up of %s skipped: %s", b.name, e)
        if which == "audio" and self.speech_check and self.bundle.of("audio"):
            try:  # the speech check's first call compiles its TorchScript graph (about 0.15 s)
                self.hears_speech(np.zeros(self.bundle.decode.sample_rate, np.float32), self.bundle.decode.sample_rate)
            except Exception as e:  # noqa: BLE001
                log.debug("warm-up of the speech check skipped: %s", e)

    # -------------------------------------------------------------- public
    def predict_file(self, path: str | Path, kind: str | None = None, *, timeline: bool = False,
                     audio_windows: bool | None = None,
                     progress: Callable[[float, float | None], None] | None = None,
                     on_segment: Callable[[Segment], None] | None = None) -> Prediction:
        """One input's prediction; never raises for a bad file (an error row says why instead).

        Videos and sound files are analysed whole, as a stream of segments (``pred.segments``; ``on_segment``
        sees each as it is made, ``progress(done_s, total_s)`` follows the stream)."""
        from mmfer.data.video import NoUsablePicture, NoVideoStream

        if kind not in (None, *FILE_KINDS):  # the caller's mistake, not the file's: no error row
            raise MmferError(f"predict_file: kind must be 'video', 'audio', 'image' or None (from the extension), "
                             f"got {kind!r}")
        path = Path(path)
        kind = kind or (_media_kind(path) if path.is_file() else _not_a_file(path))
        t0 = time.perf_counter()
        progress, on_segment = _callers_own(progress), _callers_own(on_segment)
        try:
            if kind in ("video", "audio"):
                if kind == "audio" and not self.bundle.of("audio"):
                    raise MmferError(f"model {self.bundle.source} has no audio branch; audio files need one")
                stream = dict(timeline=timeline, audio_windows=audio_windows, progress=progress, on_segment=on_segment)
                try:
                    pred = self._stream(path, audio_only=kind == "audio", **stream)
                except NoUsablePicture as e:  # found before any segment: a voice memo saved as .mp4, a picture
                    if not self.bundle.of("audio"):  # too small for a face: the sound is scored alone
                        raise
                    pred = self._stream(path, audio_only=True, **stream)
                    if not isinstance(e, NoVideoStream) and not pred.predicted:
                        raise  # nothing heard either: the picture's problem is the row's error
                    said = ("no video stream: scored as a sound file" if isinstance(e, NoVideoStream)
                            else f"{e.reason}: scored by its sound alone")
                    pred.warning = "; ".join(filter(None, (said, pred.warning)))
            elif kind == "image":
                pred = self._image(path)
            elif kind == "missing":
                raise MmferError("file not found")
            elif kind == "stdin":
                raise MmferError("'-' (standard input) is not read: predict reads files; save the stream to a file "
                                 "and give its name")
            elif kind == "folder":
                raise MmferError("a folder: predict_file scores one file (predict() and mmfer predict take folders)")
            elif kind == "special":
                raise MmferError("not a regular file (a pipe, device or socket such as /dev/stdin): predict reads "
                                 "files it can seek in; save the stream to a file first")
            else:
                raise MmferError(f"unsupported file type {path.suffix or '(no extension)'!r}; expected a video "
                                 f"({' '.join(VIDEO_EXTENSIONS)}), an image ({' '.join(IMAGE_EXTENSIONS)}) or "
                                 f"audio ({' '.join(AUDIO_EXTENSIONS)})")
        except MmferError as e:
            if _raised_by_caller(e):
                raise
            pred = _error(path, _without_path(str(e), path))
        except Exception as e:  # noqa: BLE001 - one bad input must not stop a run over many files
            if _raised_by_caller(e):  # the caller's own callback (a cancel, a bug of theirs): not the file's
                raise
            log.debug("%s: unexpected error", path, exc_info=True)
            pred = _error(path, f"unexpected error ({type(e).__name__}: {e}); please report it")
        pred.seconds = round(time.perf_counter() - t0, 3)
        return pred

    def _stream(self, path: Path, *, audio_only: bool, timeline: bool, audio_windows: bool | None,
                progress: Callable[[float, float | None], None] | None,
                on_segment: Callable[[Segment], None] | None) -> Prediction:
        """A video's or sound file's row, analysed segment by segment (``analyse``), with its stage timings."""
        analysis = self.analyse(path, audio_only=audio_only, timeline=timeline, audio_windows=audio_windows,
                                progress=progress)
        for seg in analysis:
            if on_segment is not None:
                on_segment(seg)
        pred = analysis.prediction
        pred.stages = {**{k: round(v, 3) for k, v in analysis.seconds.items()},
                       "media_seconds": round(pred.segments[-1].end - pred.segments[0].start, 3)
                       if pred.segments else 0.0}
        return pred

    def analyse(self, path: str | Path, *, audio_only: bool = False, timeline: bool = False,
                audio_windows: bool | None = None,
                progress: Callable[[float, float | None], None] | None = None) -> "VideoAnalysis":
        """A video's (or, ``audio_only``, a sound file's) analysis: iterate it for the segments, lazily, then
        read ``.prediction`` for the file's row. Raises MmferError for a file that cannot be read."""
        from mmfer.inference.stream import VideoAnalysis

        return VideoAnalysis(self, path, segments=self.segment_settings, start=self.start, duration=self.duration,
                             timeline=timeline, audio_only=audio_only, audio_windows=audio_windows,
                             progress=progress)

    def set_span(self, *, segments: SegmentSettings, start: float, duration: float | None) -> None:
        """How files are cut into segments and which span of each is analysed (``start``, ``duration`` in s)."""
        def seconds(value: Any) -> float:  # "abc", None, "5" are said as bad values, not a TypeError
            if value is None or isinstance(value, (str, bytes, bool)):
                return float("nan")
            try:
                return float(value)
            except (TypeError, ValueError, OverflowError):
                return float("nan")

        if not (np.isfinite(seconds(start)) and seconds(start) >= 0):
            raise MmferError(f"--start {start!r} (start=): give a time in seconds from 0")
        if duration is not None and not (np.isfinite(seconds(duration)) and seconds(duration) > 0):
            raise MmferError(f"--duration {duration!r} (duration=): give a length in seconds above 0")
        self.segment_settings, self.start = segments, float(start)
        self.duration = None if duration is None else float(duration)

    def segments(self, path: str | Path, *, audio_only: bool | None = None) -> Iterator[Segment]:
        """The segments of a video (or sound file), yielded as they are analysed: a tool can stream an hour-long
        file's timeline without waiting for its end. A sound file is told by its extension, as ``predict_file``
        tells it (``audio_only`` overrides); a video file without a picture stream (a voice memo saved as .mp4)
        gives its sound's segments, as ``predict_file`` scores its sound, unless ``audio_only=False`` was asked
        for; an image has no segments, which is said at the call. For the segments and the file's row in one
        pass, iterate ``analyse(path)`` and then read its ``.prediction``."""
        asked = audio_only
        if audio_only is None:
            kind = _media_kind(Path(path))
            if kind == "image":
                raise MmferError(f"{path}: an image has no segments; score it with predict_file")
            audio_only = kind == "audio"
        return self._segments(path, audio_only=audio_only, sound_if_no_picture=asked is None and not audio_only
                              and bool(self.bundle.of("audio")))

    def _segments(self, path: str | Path, *, audio_only: bool, sound_if_no_picture: bool) -> Iterator[Segment]:
        from mmfer.data.video import NoVideoStream

        started = False
        try:
            for seg in self.analyse(path, audio_only=audio_only):
                started = True
                yield seg
        except NoVideoStream:
            if started or not sound_if_no_picture:
                raise
            yield from self.analyse(path, audio_only=True)

    # -------------------------------------------------------------- model calls
    @torch.inference_mode()
    def _forward(self, model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
        out = []
        for s in range(0, len(x), FORWARD_BATCH):
            xb = torch.from_numpy(np.ascontiguousarray(x[s : s + FORWARD_BATCH])).to(self.device)
            if xb.dim() == 4:
                xb = xb.contiguous(memory_format=torch.channels_last)
            out.append(torch.softmax(model(xb).float(), dim=1).cpu().numpy().astype(np.float64))
        return np.concatenate(out) if out else np.zeros((0, NUM_CLASSES))

    def face_frames(self, branch: Branch, faces: np.ndarray, *, aligned: bool, views: int) -> np.ndarray:
        """Per-image probabilities (N, 7) of a face_image branch for RGB face crops (N, H, W, 3).

        Aligned crops (from ``mmfer.faces.align``) are first cut to the branch's framing: ``fer2013``
        takes the square of the aligned crop that frames the face like FER2013's images (tighter: brows to
        chin, see ``framing_box``), the framing the shipped face model was trained on;
        ``aligned`` keeps the whole crop. Then exactly ``face_tensor`` with the branch's training data
        settings (size, grey-scale, equalisation), and the mean over ``views`` test-time views.
        """
        from mmfer.data.features import crop_views, face_tensor
        from mmfer.faces.crops import frame_faces

        faces = np.asarray(faces)
        if aligned:
            faces = frame_faces(faces, branch.options.get("framing"))
        d = branch.config.data
        x = face_tensor(faces, size=d.image_size, grayscale=d.grayscale, equalize=d.equalize)
        v = crop_views(x, views=views)  # (N, V, C, H, W)
        p = self._forward(branch.model, v.reshape(-1, *v.shape[2:]))
        return p.reshape(len(faces), v.shape[1], NUM_CLASSES).mean(axis=1)

    def hears_speech(self, samples: np.ndarray, rate: int, *, from_sample: int = 0) -> bool:
        """Whether the voice models may read ``samples`` (from ``from_sample`` on; the samples before it only warm
        the detector up): speech is heard in them, or the check is off."""
        from mmfer.inference.speech import holds_speech

        return not self.speech_check or holds_speech(samples, rate, from_sample=from_sample)

    def clip_probs_many(self, branches: Sequence[Branch], clips: Sequence[CachedClip]) -> dict[str, np.ndarray]:
        """``clip_probs`` of several branches: those with the same input (kind, sample rate and data settings,
        such as the folds of one audio model) build it once and share it."""
        from torch.utils.data import DataLoader

        from mmfer.data.datasets import collate_for
        from mmfer.engine.scoring import predict_batches

        groups: dict[tuple, list[Branch]] = {}
        for b in branches:
            groups.setdefault((b.kind, b.sample_rate, repr(b.config.data)), []).append(b)
        out = {}
        for (kind, rate, _), members in groups.items():
            d = members[0].config.data
            ds = memory_dataset(kind, clips, data=d, sample_rate=rate)
            batches = list(DataLoader(ds, batch_size=d.eval_batch_size or d.batch_size, shuffle=False,
                                      collate_fn=collate_for(ds.kind), generator=torch.Generator().manual_seed(0))) if len(ds) else []
            for b in members:
                out[b.name] = predict_batches(b.model, batches, clips=len(clips), device=self.device)
        return out

    def clip_probs(self, branch: Branch, clips: Sequence[CachedClip]) -> np.ndarray:
        """Probabilities (N, 7) of a cache-kind or audio branch for decoded clips, through its dataset."""
        from mmfer.engine.scoring import predict_clips

        ds = memory_dataset(branch.kind, clips, data=branch.config.data, sample_rate=branch.sample_rate)
        d = branch.config.data
        return predict_clips(branch.model, ds, device=self.device, batch_size=d.eval_batch_size or d.batch_size,
                             progress=False)

    # -------------------------------------------------------------- per input kind
    def _image(self, path: Path) -> Prediction:
        branches = [b for b in self.bundle.branches if b.kind == "face_image"]
        if not branches:
            raise MmferError(f"model {self.bundle.source} has no single-image face branch (face_image); "
                             "images need one, e.g. the default model")
        if path.stat().st_size == 0:
            raise MmferError("file is empty (0 bytes); re-copy or re-download it")
        check_image_size(path)  # before the truncation check below could name a refusal otherwise
        from mmfer.data.containers import cut_short

        cut = cut_short(path)
        try:
            rgb = read_image_rgb(path)
        except MmferError:
            if cut:
                raise MmferError(f"file looks truncated: {cut}; not readable, re-copy the file") from None
            raise
        warnings = [f"file looks truncated: {cut}; scored what decodes (the rest is grey), re-copy the file"] if cut \
            else []
        h, w = rgb.shape[:2]
        tight = max(h, w) <= TIGHT_CROP_MAX_SIDE and TIGHT_CROP_ASPECT[0] <= w / h <= TIGHT_CROP_ASPECT[1]
        if tight and min(h, w) < TIGHT_CROP_MIN_SIDE:  # taken as the face without a detector: a dot is no face
            raise MmferError(f"image too small to hold a face ({w}x{h}; a face photo needs at least "
                             f"{TIGHT_CROP_MIN_SIDE} px a side)")
        if float(rgb.reshape(-1, 3).std(axis=0).max()) < BLANK_IMAGE_STD:  # per colour: a red card too, any size
            raise MmferError(f"blank image ({w}x{h}, one flat colour): no face to score")
        if tight:
            branches = [b for b in branches if b.options["serves"] != "detected_faces"]
            if not branches:
                raise MmferError(f"model {self.bundle.source} only scores faces its detector cuts from video frames "
                                 f"and larger images; this is a tight face image ({w}x{h})")
        else:
            branches = [b for b in branches if b.options["serves"] != "tight_images"]
            if not branches:
                raise MmferError(f"model {self.bundle.source} only scores tight face images (FER2013-like, at most "
                                 f"{TIGHT_CROP_MAX_SIDE} px); this is a {w}x{h} image")
        from mmfer.faces.backends import get_backend
        from mmfer.faces.crops import frame_crop, image_crop

        d = self.bundle.decode
        aligned = None  # the whole aligned crop (video path), made once for every branch that takes it
        probs = {}
        for b in branches:
            if tight and b.options["tight_images"] == "as_is":
                probs[b.name] = self.face_frames(b, rgb[None], aligned=False, views=b.options["image_views"])[0]
                continue
            if aligned is None:
                made = (image_crop(rgb, get_backend(d.face_backend), crop_size=d.crop_size, framing=None,
                                   detect_max_side=d.detect_max_side) if tight else
                        frame_crop(rgb, get_backend(d.face_backend), crop_size=d.crop_size, framing=None,
                                   detect_max_side=d.detect_max_side))
                if made is None:
                    raise MmferError(f"no face found ({w}x{h} image, searched by the {d.face_backend} detector at up to "
                                     f"{d.detect_max_side} px on its longer side: a face narrower than about 25 px at "
                                     "that size, far from frontal or mostly hidden is missed; a tight crop of at most "
                                     f"{TIGHT_CROP_MAX_SIDE} px is taken as the face)")
                aligned = made.crop[None]
            probs[b.name] = self.face_frames(b, aligned, aligned=True, views=b.options["image_views"])[0]
        return self._fused(path, "image", probs, face_ratio=1.0, notes=[], warnings=warnings)

    def fuse_branches(self, probs: dict[str, np.ndarray]) -> tuple[np.ndarray | None, list[str], str]:
        """The bundle's fusion of the branches that scored: (probabilities or None, modalities used, a note naming
        branches left out for non-finite scores, or ""). One branch's NaN must not wipe out what the others saw."""
        broken = [name for name, p in probs.items() if p is not None and not np.all(np.isfinite(p))]
        note = ""
        if broken:
            probs = {name: p for name, p in probs.items() if name not in broken}
            note = f"{', '.join(broken)} gave non-finite scores and were left out of fusion"
        fused = self.bundle.fuse(probs)
        used = [m for m in ("face", "audio") if any(b.modality == m and b.name in probs for b in self.bundle.branches)]
        return fused, used, note

    def make_prediction(self, path: Path, kind: str, fused: np.ndarray | None, *, used: list[str],
                        branches: dict[str, np.ndarray], face_ratio: float | None, notes: list[str],
                        warnings: list[str]) -> Prediction:
        """A row: ``notes`` (what was missing) lead the warning with the fallback taken; None fuses to uniform."""
        if notes:
            warnings = [f"{'; '.join(notes)}: " + (f"{'+'.join(used)} only" if used else
                                                   "uniform probabilities, no prediction"), *warnings]
        if fused is None:
            fused = np.full(NUM_CLASSES, 1.0 / NUM_CLASSES)
        return Prediction(path=str(path), clip_id=clip_id_from_name(path.stem), kind=kind, probs=fused,
                          face_ratio=face_ratio, modalities="+".join(used), warning="; ".join(warnings),
                          branches=dict(branches))

    def _fused(self, path: Path, kind: str, probs: dict[str, np.ndarray], *, face_ratio: float | None,
               notes: list[str], warnings: list[str]) -> Prediction:
        fused, used, broken = self.fuse_branches(probs)
        kept = {name: p for name, p in probs.items() if p is not None and np.all(np.isfinite(p))}
        return self.make_prediction(path, kind, fused, used=used, branches=kept, face_ratio=face_ratio, notes=notes,
                                    warnings=[*warnings, broken] if broken else warnings)


def _callers_own(callback: Callable[..., None] | None) -> Callable[..., None] | None:
    """``callback`` (``progress``, ``on_segment``) with what it raises marked as the caller's, so the handlers that
    turn a file's failure into an error row let it through: a service cancelling a long file, or a bug in its
    callback, is not the file's fault and not "please report it" to mmfer. It reaches the caller as raised."""
    if callback is None:
        return None

    def call(*args: Any, **kwargs: Any) -> None:
        try:
            callback(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - any of the caller's: marked, and on its way as it is
            try:
                e.__dict__["_mmfer_callers_own"] = True
            except (AttributeError, TypeError):  # an exception object without attributes: an error row, as before
                pass
            raise

    return call


def _raised_by_caller(error: BaseException) -> bool:
    return bool(getattr(error, "__dict__", {}).get("_mmfer_callers_own"))


def _error(path: Path, reason: str) -> Prediction:
    return Prediction(path=str(path), clip_id=clip_id_from_name(path.stem), kind="error", warning=reason)


def _without_path(message: str, path: Path) -> str:
    """The reason without a leading ``PATH: `` (the path column already names the file)."""
    for prefix in (f"{path}: ", f"{os.path.abspath(path)}: "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message
