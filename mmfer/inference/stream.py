"""One video (or long sound file) analysed as a stream: decoded, tracked and scored batch by batch, cut into
segments as it goes, so memory is bounded by the batch and segment sizes, never by the file's length.

The frame pipeline is preprocessing's (``iter_face_batches``: decode, track, align), the branch inputs are
built by the predictor's functions, and each segment is fused by the bundle like a whole clip used to be:
a clip no longer than one and a half segments is one segment, scored exactly as before segments existed.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from mmfer.data.audio import clip_note
from mmfer.errors import MmferError
from mmfer.inference.segments import Segment, SegmentSettings, final_cuts, main_track, next_cut, summarise
from mmfer.labels import NUM_CLASSES


_SOUND_THREAD: ThreadPoolExecutor | None = None
_SOUND_THREAD_MADE = threading.Lock()  # two threads predicting at once start one, not two


def sound_thread() -> ThreadPoolExecutor:
    """The thread that scores a short clip's sound beside its frames (``VideoAnalysis._score_ahead``); a forked
    child starts its own (the parent's thread is not in it). It computes on one thread of its own
    (``_one_compute_thread``); every other thread keeps its count."""
    global _SOUND_THREAD
    with _SOUND_THREAD_MADE:
        if _SOUND_THREAD is None:
            from mmfer.engine.device import torch_runs_on_openmp, torch_threads_kept

            with torch_threads_kept():  # setting the sound thread's count sets the default for new threads too
                thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmfer-sound",
                                            initializer=_one_compute_thread if torch_runs_on_openmp() else None)
                thread.submit(int).result()  # its count is set now, within the block
            _SOUND_THREAD = thread
        return _SOUND_THREAD


def _one_compute_thread() -> None:
    """Torch ops of this thread run on it alone. Why: a live thread that had run torch ops on a team of OpenMP
    threads of its own made every other thread's small ops about 4 times slower, whether that team worked or
    waited (the speech check of a sound file 26 -> 110 ms on 2 cores: more OpenMP threads than cores wake
    through the kernel). Only where torch runs on OpenMP, whose count is per thread."""
    import torch

    torch.get_num_threads()  # this thread takes the process's default first, so that it is not taken again later
    torch.set_num_threads(1)


def _forget_sound_thread() -> None:
    global _SOUND_THREAD, _SOUND_THREAD_MADE
    _SOUND_THREAD, _SOUND_THREAD_MADE = None, threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX only; Windows has no fork to renew state after
    os.register_at_fork(after_in_child=_forget_sound_thread)


# files up to this long get the audio branches (fused) over sliding windows for --plots by default (their plot draws
# frames and windows; a longer one's plot draws segments, see plots.SEGMENT_VIEW_ABOVE)
AUDIO_WINDOWS_UP_TO_S = 120.0
AUDIO_AHEAD_S = 0.5  # sound is decoded this far past the frames, so a segment's sound is there when it is cut
# lengths of sound and video that differ by more than this get a warning saying where each ends
STREAM_END_GAP_S = 2.0


class _FreeMemory:
    """Hands freed heap memory back to the system (glibc's malloc_trim) when the resident set has grown
    ``slack`` bytes past what it was after the first batch. Frames of a few MB each, made and freed in two
    threads, leave glibc's heaps fragmented: a 10-minute 720p video grew from 1.1 to 1.7 GB. Trimming after
    every batch held it at 1.24 GB but cost 20% more time (freed pages fault back in); trimming only on growth
    costs little. A no-op where there is no glibc or no /proc."""

    def __init__(self, slack: int = 64 << 20) -> None:
        self.slack = slack
        self.base: int | None = None
        try:
            import ctypes
            import resource

            self._trim = ctypes.CDLL("libc.so.6").malloc_trim
            self._page = resource.getpagesize()
            self._rss()
        except (ImportError, OSError, AttributeError, ValueError):  # no resource module (Windows), glibc or /proc
            self._trim = None

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def __call__(self) -> None:
        if self._trim is None:
            return
        rss = self._rss()
        if self.base is None:
            self.base = rss
        elif rss > self.base + self.slack:
            self._trim(0)


@dataclass
class _Audio:
    """One sample rate's sound: decoded chunk by chunk, kept from ``first`` (sample number) on."""

    rate: int
    chunks: Iterator[np.ndarray] | None
    buf: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    first: int = 0  # sample number of buf[0], from the start of the analysed span
    done: bool = False
    strict: bool = False  # the only stream (audio files): unreadable from the start is an error, not a warning
    peak: float = 0.0
    bad: int = 0  # non-finite samples set to 0
    over: int = 0  # samples clipped to [-1, 1]
    over_peak: float = 0.0  # the largest of them in magnitude, before clipping

    @property
    def end(self) -> int:
        return self.first + self.buf.size

    def pull(self, until: int | None, warnings: list[str]) -> None:
        """Decode until sample ``until`` is in (None: to the end)."""
        from mmfer.data.video import DecodeError

        got = []
        have = self.end
        while not self.done and (until is None or have < until):
            try:
                a = next(self.chunks) if self.chunks is not None else None
            except StopIteration:
                a = None
            except DecodeError as e:
                if self.strict and self.end == 0:
                    raise
                warnings.append(f"audio unreadable, analysed without sound: {e}")
                a = None
            except Exception as e:  # noqa: BLE001 - a broken sound track leaves the pictures
                warnings.append(f"audio unreadable, analysed without sound ({type(e).__name__}: {e})")
                a = None
            if a is None:
                self.done = True
                break
            bad = ~np.isfinite(a)
            if bad.any():  # as sanitise_audio, counted over the whole stream for one warning
                self.bad += int(bad.sum())
                a = np.where(bad, np.float32(0), a)
            over = np.abs(a) > 1.0
            if over.any():
                self.over += int(over.sum())
                self.over_peak = max(self.over_peak, float(np.abs(a).max()))
                a = np.clip(a, -1.0, 1.0)
            if a.size:
                self.peak = max(self.peak, float(np.max(np.abs(a))))
            got.append(a)
            have += a.size
        if got:
            self.buf = np.concatenate([self.buf, *got]) if self.buf.size else np.concatenate(got)

    def take(self, a: int, b: int) -> np.ndarray:
        a, b = max(a, self.first), min(b, self.end)
        return self.buf[a - self.first : b - self.first] if b > a else np.zeros(0, np.float32)

    def drop_before(self, sample: int) -> None:
        k = min(max(0, sample - self.first), self.buf.size)
        if k:
            self.buf = self.buf[k:].copy()
            self.first += k

    def note(self) -> str:
        notes = []
        if self.bad:
            notes.append(f"{self.bad} non-finite audio sample(s) set to 0")
        notes.append(clip_note(self.over, self.over_peak))
        return "; ".join(n for n in notes if n)


@dataclass
class _Frames:
    """The analysed frames not yet in a segment (and, for --frames and --plots, what every frame showed)."""

    times: list[np.ndarray] = field(default_factory=list)
    mask: list[np.ndarray] = field(default_factory=list)
    track: list[np.ndarray] = field(default_factory=list)
    probs: dict[str, list[np.ndarray]] = field(default_factory=dict)  # per face_image branch, NaN rows w/o a face
    clip: dict[str, list[np.ndarray]] = field(default_factory=dict)  # faces/landmarks/boxes for cache-kind branches

    def add(self, name: str, store: dict[str, list[np.ndarray]], value: np.ndarray) -> None:
        store.setdefault(name, []).append(value)

    def split(self, end: float) -> dict[str, Any]:
        """Remove and return the frames shown before ``end`` (s)."""
        if not self.times:
            return {"times": np.zeros(0), "mask": np.zeros(0, bool), "track": np.zeros(0, np.int32), "probs": {},
                    "clip": {}}
        times = np.concatenate(self.times)
        n = int(np.searchsorted(times, end - 1e-9, side="left"))

        def cut(parts: list[np.ndarray]) -> np.ndarray:
            whole = np.concatenate(parts)
            parts[:] = [whole[n:]] if n < len(whole) else []
            return whole[:n]

        out = {"times": cut(self.times), "mask": cut(self.mask), "track": cut(self.track),
               "probs": {k: cut(v) for k, v in self.probs.items()}, "clip": {k: cut(v) for k, v in self.clip.items()}}
        return out


class VideoAnalysis:
    """Iterate to get a video's segments, lazily; afterwards ``prediction`` is the one-row-per-file summary.

    ``start``/``duration`` (s) limit the span analysed; ``progress(done_s, total_s)`` is called as it goes;
    ``timeline`` keeps per-frame and per-audio-window probabilities for --frames and --plots (small arrays:
    an hour at 8 frames/s is a few MB). ``audio_windows`` (with ``timeline``) also scores the sound over
    1-s windows every 0.5 s, which costs about as much again as the segments' own audio: always when True
    (--frames), never when False, and by default only for files up to ``AUDIO_WINDOWS_UP_TO_S`` long, whose
    plots draw them (a longer file's plot shows its segments). ``audio_only`` analyses the sound alone.
    """

    def __init__(self, predictor: Any, path: str | Path, *, segments: SegmentSettings = SegmentSettings(),
                 start: float = 0.0, duration: float | None = None, timeline: bool = False,
                 audio_only: bool = False, audio_windows: bool | None = None,
                 progress: Callable[[float, float | None], None] | None = None) -> None:
        if start < 0 or not np.isfinite(start):
            raise MmferError(f"--start {start}: give a time in seconds from 0")
        if duration is not None and not duration > 0:
            raise MmferError(f"--duration {duration}: give a length in seconds above 0")
        self.predictor = predictor
        self.path = Path(path)
        self.settings = segments
        self.start = float(start)
        self.duration = duration
        self.timeline = timeline
        self.audio_only = audio_only
        self.audio_windows = audio_windows
        self.progress = progress
        self.prediction: Any = None  # the Prediction of mmfer.predict, once iterated
        # seconds per stage (``mmfer bench``): decode is the wait for decoded frames (decoding runs in a helper
        # thread) plus alignment; detect and landmarks are the tracker's; face_model and audio the branches'
        # (audio wherever it ran: a short clip's sound is scored in the sound thread, beside its frames)
        self.seconds = {"decode": 0.0, "detect": 0.0, "landmarks": 0.0, "face_model": 0.0, "audio": 0.0}
        self._ahead: dict[tuple[int, int, int], Future] = {}  # sound being scored in the sound thread

    # ---------------------------------------------------------- the stream
    def __iter__(self) -> Iterator[Segment]:
        try:
            yield from self._stream()
        except MmferError as e:  # each says which file, as predict_file's row does by its path column
            if not str(e).startswith(str(self.path)):
                e.args = (f"{self.path}: {e}", *e.args[1:])
            raise
        finally:
            self._drop_ahead()

    def _stream(self) -> Iterator[Segment]:
        from mmfer.data.cache import clip_id_from_name
        from mmfer.data.clip import iter_face_batches, make_tracker, open_video
        from mmfer.data.video import iter_audio_chunks

        bundle = self.predictor.bundle
        self.clip_id = clip_id_from_name(self.path.stem)
        face_branches = [] if self.audio_only else bundle.frame_branches()
        audio_branches = bundle.of("audio")
        decode = bundle.decode
        warnings: list[str] = []
        stops: list[str] = []
        decode_warnings: list[str] = []
        info = None
        if face_branches:
            info = open_video(self.path)  # raises with the reason: an error row
            warnings.extend(info.notes)
        fps = float(decode.fps or (info.fps if info is not None else 0.0) or 25.0)
        lead = info.start_offset if info is not None else 0.0  # the picture comes in this late on the file's clock
        self._t0 = max(self.start, lead)  # time of the first frame analysed
        total = self.duration
        if total is None and info is not None:
            total = max(0.0, lead + float(info.duration) - self.start)
        if lead > self.start:
            warnings.append(f"the picture starts at {lead:.1f} s (the sound before it is analysed alone)")
        self._windowed = self.timeline and (self.audio_windows if self.audio_windows is not None else
                                            total is None or total <= AUDIO_WINDOWS_UP_TO_S)
        rates = sorted({b.sample_rate for b in audio_branches} | ({decode.sample_rate} if face_branches else set()))
        audio = {}
        for sr in rates:
            limit = int(round(self.duration * sr)) if self.duration else None
            try:
                chunks = iter_audio_chunks(self.path, sample_rate=sr, start=self.start, max_samples=limit,
                                           warnings=decode_warnings, notes=warnings)
            except Exception:  # noqa: BLE001 - opened lazily; errors come at the first pull
                chunks = None
            audio[sr] = _Audio(sr, chunks, strict=not face_branches)
        self._audio = audio
        main_sr = audio_branches[0].sample_rate if audio_branches else (rates[0] if rates else 16000)
        frames = _Frames()
        self._frames_all: dict[str, list[np.ndarray]] = {"times": [], "face": [], "boxes": [], "probs": [],
                                                          "track": []}
        self._windows: list[tuple[float, np.ndarray]] = []
        self._next_window = 0
        self._segments: list[Segment] = []
        self._fuse_notes: list[str] = []
        self._speechless = False  # sound that was not silent, in which no speech was heard (not scored)
        self._n_frames = 0
        self._n_face = 0
        self._frame_hw = None
        if face_branches and audio_branches:
            self._score_ahead(audio, audio_branches, total, warnings)
        seg_start = self.start
        video_end = self.start  # frames known up to here (s)
        # --duration counts from --start, and the picture may come in later; shorter than a frame still takes one
        # (0 frames read as "no frames could be decoded"), unless the picture starts after the span: sound only
        budget = int(round((self.start + self.duration - self._t0) * fps)) if self.duration else None
        if self.duration and face_branches and self._t0 >= self.start + self.duration:
            if not audio_branches:  # a face-only model: nothing to analyse in the span
                raise MmferError(f"nothing to analyse from --start {self.start:g} s for --duration {self.duration:g} s: "
                                 f"the picture starts at {self._t0:.1f} s")
            warnings[:] = [w for w in warnings if not w.startswith("the picture starts at")]
            warnings.append(f"the picture starts at {self._t0:.1f} s, after the span analysed: sound only")
            face_branches = []
            for a in audio.values():  # the only stream now: unreadable sound is an error, as for a sound file
                a.strict = True
        video_done = not face_branches
        tracker = make_tracker(decode) if face_branches else None
        settings = dataclasses.replace(decode, max_frames=max(1, budget) if budget is not None else None)
        cache_kinds = [b for b in face_branches if b.kind != "face_image"]

        def horizon() -> float:
            ends = [video_end] if not video_done else []
            ends += [self.start + a.end / a.rate for a in audio.values() if not a.done]
            return min(ends) if ends else float("-inf")  # all done: the last cuts are made after the stream

        def emit_ready() -> Iterator[Segment]:
            nonlocal seg_start
            while horizon() - seg_start >= 1.5 * self.settings.seconds:
                main = audio.get(main_sr)
                cut = next_cut(seg_start, self.settings, audio=main.buf if main else None,
                               audio_start=self.start + (main.first / main.rate if main else 0.0),
                               sample_rate=main_sr)
                yield self._segment(seg_start, cut, frames, face_branches, cache_kinds, audio_branches, fps)
                seg_start = cut

        free_memory = _FreeMemory()
        t_batch = time.perf_counter()
        if face_branches:
            batches = iter_face_batches(self.path, settings, info=info, warnings=decode_warnings, stops=stops,
                                        overlap_io=True, start=max(0.0, self.start - lead), tracker=tracker)
            for batch in batches:
                self.seconds["decode"] += time.perf_counter() - t_batch
                self._add_frames(batch, frames, face_branches, cache_kinds, fps)
                video_end = self._t0 + self._n_frames / fps
                if info is not None and self.start < lead + info.duration < video_end:  # the last frame's 1/fps
                    video_end = lead + float(info.duration)  # ends the file no later than the file does
                for a in audio.values():
                    a.pull(int(round((video_end - self.start + AUDIO_AHEAD_S) * a.rate)), warnings)
                yield from emit_ready()
                if self.progress:
                    self.progress(video_end - self.start, total)
                free_memory()
                t_batch = time.perf_counter()
            video_done = True
            if self._n_frames == 0 and not self.start:
                raise MmferError("no video frames could be decoded (empty or broken video stream)")
            if self._n_frames == 0 and audio_branches:  # the picture ended before --start: the sound may go on
                warnings.append(f"the picture ends before --start {self.start:g} s: sound only")
        # the sound after the last frame (all of it for audio alone), a few seconds at a time
        while not all(a.done for a in audio.values()):
            for a in audio.values():
                a.pull(a.end + int(round(self.settings.seconds * a.rate)), warnings)
            yield from emit_ready()
            if self.progress:
                self.progress(max([video_end - self.start] + [a.end / a.rate for a in audio.values()]), total)
        if self.start and not self._n_frames and not any(audio[b.sample_rate].end for b in audio_branches):
            raise MmferError(f"nothing to analyse after --start {self.start:g} s")  # (a face-only model: no sound)
        end = max([video_end] + [self.start + a.end / a.rate for a in audio.values()])
        while end > seg_start:  # the last cuts: a remainder under half a window joins the last segment
            last = final_cuts(seg_start, end, self.settings)
            cut = end if last else next_cut(
                seg_start, self.settings, audio=audio[main_sr].buf if main_sr in audio else None,
                audio_start=self.start + (audio[main_sr].first / main_sr if main_sr in audio else 0.0),
                sample_rate=main_sr)
            yield self._segment(seg_start, cut, frames, face_branches, cache_kinds, audio_branches, fps, last=last)
            seg_start = cut
        # the frame pipeline runs the tracker as it yields: the time spent waiting for a batch holds the
        # detector and the landmark fits, which are counted apart
        self.seconds["detect"] = tracker.seconds["detect"] if tracker else 0.0
        self.seconds["landmarks"] = tracker.seconds["landmarks"] if tracker else 0.0
        self.seconds["decode"] = max(0.0, self.seconds["decode"] - self.seconds["detect"] - self.seconds["landmarks"])
        self._finish(face_branches, audio_branches, info, fps, video_end, warnings, stops, decode_warnings)

    # ---------------------------------------------------------- frames in
    def _add_frames(self, batch, frames: _Frames, face_branches, cache_kinds, fps: float) -> None:
        p = self.predictor
        n = len(batch.index)
        times = self._t0 + (self._n_frames + np.arange(n)) / fps
        mask = np.asarray(batch.track.mask, bool)
        self._n_frames += n
        self._n_face += int(mask.sum())
        self._frame_hw = self._frame_hw or batch.frame_hw
        frames.times.append(times)
        frames.mask.append(mask)
        frames.track.append(np.asarray(batch.track.track, np.int32))
        t = time.perf_counter()
        weighted, weight = None, 0.0
        for b in face_branches:
            if b.kind != "face_image":
                continue
            per = np.full((n, NUM_CLASSES), np.nan)
            if mask.any():
                per[mask] = p.face_frames(b, batch.faces[mask], aligned=True, views=b.options["frame_views"])
            frames.add(b.name, frames.probs, per)
            if self.timeline:  # the face models' per-frame probabilities, weighted as fusion weighs them
                w = float(b.weight.mean()) or 1.0
                weighted = per * w if weighted is None else weighted + per * w
                weight += w
        self.seconds["face_model"] += time.perf_counter() - t
        if cache_kinds:
            frames.add("faces", frames.clip, batch.faces)
            frames.add("landmarks", frames.clip, np.asarray(batch.track.landmarks, np.float32))
            frames.add("boxes", frames.clip, np.asarray(batch.track.boxes, np.float32))
        if self.timeline:
            full = weighted / weight if weighted is not None else np.full((n, NUM_CLASSES), np.nan)
            full[~mask] = np.nan
            self._frames_all["times"].append(times)
            self._frames_all["face"].append(mask)
            self._frames_all["boxes"].append(np.asarray(batch.track.boxes, np.float64)[:, :4])
            self._frames_all["probs"].append(full)
            self._frames_all["track"].append(np.asarray(batch.track.track, np.int32))

    # ---------------------------------------------------------- one segment
    def _segment(self, s: float, e: float, frames: _Frames, face_branches, cache_kinds, audio_branches,
                 fps: float, *, last: bool = False) -> Segment:
        from mmfer.data.cache import CachedClip
        from mmfer.inference.inputs import pool_frames

        p = self.predictor
        part = frames.split(float("inf") if last else e)
        mask = part["mask"]
        probs: dict[str, np.ndarray] = {}
        t = time.perf_counter()
        if mask.any():
            for b in face_branches:
                if b.kind == "face_image":
                    probs[b.name] = pool_frames(part["probs"][b.name][mask], b.options["frame_pooling"])
        if cache_kinds and mask.any():
            sr = p.bundle.decode.sample_rate
            a = self._audio[sr]
            clip = CachedClip(clip_id=self.clip_id, split="Test", faces=part["clip"]["faces"],
                              landmarks=part["clip"]["landmarks"], boxes=part["clip"]["boxes"], mask=mask,
                              audio=a.take(*self._samples(s, e, sr, last)),
                              meta={"fps": fps, "frames": int(len(mask)), "sample_rate": sr,
                                    "height": self._frame_hw[0], "width": self._frame_hw[1]})
            for b in cache_kinds:
                probs[b.name] = p.clip_probs(b, [clip])[0]
        self.seconds["face_model"] += time.perf_counter() - t
        t = time.perf_counter()
        for rate in sorted({b.sample_rate for b in audio_branches}):
            a = self._audio[rate]
            lo, hi = self._samples(s, e, rate, last)
            ahead = self._ahead.pop((rate, max(lo, a.first), min(hi, a.end)), None)
            if ahead is not None:
                got, seconds = ahead.result()
                probs.update(got)
                t -= seconds  # audio counts the scoring's own time, not the wait for it
            else:
                probs.update(self._score_sound(audio_branches, rate, a.take(lo, hi)))
        if self._windowed and audio_branches:
            self._audio_windows(audio_branches, e, last)
        self.seconds["audio"] += time.perf_counter() - t
        fused, used, broken = p.fuse_branches(probs)
        if broken and broken not in self._fuse_notes:
            self._fuse_notes.append(broken)
        face_ratio = float(mask.mean()) if len(mask) else None
        seg = Segment(path=str(self.path), clip_id=self.clip_id, start=s, end=e,
                      probs=fused if fused is not None else np.full(NUM_CLASSES, 1.0 / NUM_CLASSES),
                      face_ratio=face_ratio if face_branches else None, modalities="+".join(used),
                      track=main_track(part["track"]), branches=probs)
        for a in self._audio.values():  # the sound before this segment's end is done with
            lo = self._samples(e, e, a.rate, False)[0]
            if self._windowed and audio_branches and a.rate == audio_branches[0].sample_rate:
                lo = min(lo, self._window_start(a.rate) - a.rate)  # windows still to score, and the second the
                # speech check hears before each
            a.drop_before(lo)
        self._segments.append(seg)
        return seg

    def _score_sound(self, audio_branches, rate: int, samples: np.ndarray) -> dict[str, np.ndarray]:
        """The probabilities of the audio branches at ``rate`` for these samples; none for silence or sound
        too short to score."""
        from mmfer.inference.inputs import MIN_AUDIO_SECONDS, audio_clip, is_silent

        if is_silent(samples) or samples.size < MIN_AUDIO_SECONDS * rate:
            return {}
        if not self.predictor.hears_speech(samples, rate):  # a fan, a hum, a noise floor: no voice to read
            self._speechless = True
            return {}
        got = self.predictor.clip_probs_many([b for b in audio_branches if b.sample_rate == rate],
                                             [audio_clip(samples, self.clip_id)])
        return {name: q[0] for name, q in got.items()}

    def _score_ahead(self, audio: dict[int, _Audio], audio_branches, total: float | None,
                     warnings: list[str]) -> None:
        """Start scoring the sound of a file that will be one segment, in a helper thread, before its frames.

        A clip shorter than one and a half segments (AFEW's, the benchmark's) is one segment, scored only once
        every frame is tracked: until then the audio models would wait while one core fits landmarks. Its
        sound (a few seconds, decoded now instead of a batch later) is scored beside the frames instead, by the
        same code; ``_segment`` takes the result where its sound is exactly these samples and scores afresh
        otherwise, so the outputs are the same either way.
        """
        limit = 1.5 * self.settings.seconds
        if total is None or total >= limit:
            return
        rates = sorted({b.sample_rate for b in audio_branches})
        for rate in rates:
            a = audio[rate]
            a.pull(int(limit * rate) + 1, warnings)
            if not a.done or a.end >= limit * rate or a.first != 0:
                return

        def timed(rate: int, samples: np.ndarray) -> tuple[dict[str, np.ndarray], float]:
            t = time.perf_counter()
            return self._score_sound(audio_branches, rate, samples), time.perf_counter() - t

        for rate in rates:
            a = audio[rate]
            self._ahead[(rate, 0, a.end)] = sound_thread().submit(timed, rate, a.take(0, a.end))

    def _drop_ahead(self) -> None:
        """Scoring ahead that no segment took (the frames ran past the declared length, or the file failed):
        cancelled or waited for, so it never runs beside the next file's use of the same models."""
        for f in self._ahead.values():
            f.cancel()
        wait(list(self._ahead.values()))
        self._ahead.clear()

    def _samples(self, s: float, e: float, rate: int, last: bool) -> tuple[int, int]:
        a = int(round((s - self.start) * rate))
        b = None if last else int(round((e - self.start) * rate))
        return a, (b if b is not None else 1 << 62)

    # ---------------------------------------------------------- audio windows (--frames, --plots)
    def _window_start(self, rate: int) -> int:
        from mmfer.inference.inputs import AUDIO_HOP_S

        return self._next_window * max(1, int(round(AUDIO_HOP_S * rate)))

    def _audio_windows(self, branches, until: float, last: bool) -> None:
        """The audio models over AUDIO_WINDOW_S windows every AUDIO_HOP_S, on the grid of the whole span (as
        ``audio_windows``), for the windows whose sound is all in by now: each window fused over the audio
        branches (of the first one's sample rate) with the bundle's weights, as a clip without a face is, so
        the plot's and --frames' audio say what the row's audio says (the first branch alone could contradict
        it). Branches at another sample rate (none in the shipped bundle) are left out of the windows."""
        from mmfer.inference.inputs import AUDIO_HOP_S, AUDIO_WINDOW_S, MIN_AUDIO_SECONDS, audio_clip, is_silent

        rate = branches[0].sample_rate
        a = self._audio[rate]
        win, hop = int(round(AUDIO_WINDOW_S * rate)), max(1, int(round(AUDIO_HOP_S * rate)))
        avail = a.end if last else min(a.end, int(round((until - self.start) * rate)) + win)
        spans = []
        k = self._next_window
        while k * hop + win <= avail:
            spans.append((k * hop, k * hop + win))
            k += 1
        if last and not self._windows and not spans and a.end > 0:
            spans = [(0, a.end)]  # shorter than one window: one window of everything
        self._next_window = k
        if spans:
            sound = [a.take(s0, s1) for s0, s1 in spans]
            # silence, sound too short to score, or without speech (heard with up to a second before the window:
            # the detector started cold missed speech in short pieces) has no probabilities (NaN), as a frame
            # without a face
            heard = [not is_silent(x) and x.size >= MIN_AUDIO_SECONDS * rate and self.predictor.hears_speech(
                a.take(max(a.first, s0 - rate), s1), rate, from_sample=s0 - max(a.first, s0 - rate))
                for x, (s0, s1) in zip(sound, spans)]
            out = np.full((len(spans), NUM_CLASSES), np.nan)
            if any(heard):
                clips = [audio_clip(x, self.clip_id) for x, h in zip(sound, heard) if h]
                each = self.predictor.clip_probs_many([b for b in branches if b.sample_rate == rate], clips)
                fused = [self.predictor.fuse_branches({n: q[i] for n, q in each.items()})[0] for i in range(len(clips))]
                out[heard] = np.stack([q if q is not None else np.full(NUM_CLASSES, np.nan) for q in fused])
            for (s0, s1), q in zip(spans, out):
                self._windows.append((self.start + (s0 + s1) / 2 / rate, q))

    # ---------------------------------------------------------- the file's row
    def _finish(self, face_branches, audio_branches, info, fps, video_end, warnings, stops, decode_warnings) -> None:
        from mmfer.data.clip import _looks_truncated
        from mmfer.inference.inputs import MIN_AUDIO_SECONDS, SILENCE_PEAK

        p = self.predictor
        own = f"{self.path}: "  # the row names its file already: the decoder's notes without it
        notes_w = [w[len(own):] if w.startswith(own) else w for w in [*stops, *decode_warnings]]
        for w in warnings:
            if w not in notes_w:
                notes_w.append(w)
        if face_branches:
            if stops or any("truncated or corrupt" in w for w in decode_warnings):
                notes_w.insert(0, ("file looks truncated: " if info is not None and info.cut_short else "")
                               + f"the video stream breaks off at {video_end:.1f} s"
                               + (f" but {info.cut_short}" if info is not None and info.cut_short else "")
                               + ": analysed up to there"
                               + (" (the sound goes on)" if self._audio and max(
                                   self.start + a.end / a.rate for a in self._audio.values()) > video_end + 1
                                  else ""))
            if self._n_frames == 1:
                notes_w.append("only one video frame analysed")
            main = self._audio.get(p.bundle.decode.sample_rate)
            audio_s = main.end / main.rate if main else 0.0
            truncated = _looks_truncated(info, self._n_frames / fps, audio_s, audio_capped=bool(self.duration))
            if truncated and not self.start and not self.duration and not decode_warnings and not stops:
                notes_w.append(f"file looks truncated: the video stream breaks off at {video_end:.1f} s "
                               f"({self._n_frames} frame(s) analysed) but {truncated}; analysed up to there, re-copy the file")
            v_len = video_end - self.start
            if main is not None and main.end and self._n_frames and abs(audio_s - v_len) > STREAM_END_GAP_S:
                if audio_s > v_len:
                    notes_w.append(f"the video stream ends at {video_end:.1f} s and the sound at "
                                   f"{self.start + audio_s:.1f} s: segments after {video_end:.1f} s have sound only")
                else:
                    notes_w.append(f"the sound ends at {self.start + audio_s:.1f} s and the video stream at "
                                   f"{video_end:.1f} s: segments after {self.start + audio_s:.1f} s have faces only")
        for note in [a.note() for a in self._audio.values()] + self._fuse_notes:
            if note and note not in notes_w:
                notes_w.append(note)
        missing = []
        if face_branches and self._n_frames and self._n_face == 0:  # no frame at all is said above
            missing.append("no face found in any frame")
        heard = [b for b in audio_branches if self._audio[b.sample_rate].peak >= SILENCE_PEAK]
        if self.audio_only:  # as an audio file always said: no samples, silence, or too short to classify
            for b in audio_branches:
                a = self._audio[b.sample_rate]
                if a.end == 0:
                    missing = ["no audio samples"]
                elif a.peak < SILENCE_PEAK:
                    missing = ["silent audio"]
                elif a.end < MIN_AUDIO_SECONDS * b.sample_rate:
                    missing = [f"audio too short to classify ({a.end} sample(s), {1000 * a.end / b.sample_rate:.0f} "
                               f"ms; at least {1000 * MIN_AUDIO_SECONDS:.0f} ms is needed)"]
        elif audio_branches and not heard:
            missing.append("no audio" if all(self._audio[b.sample_rate].end == 0 for b in audio_branches)
                           else "silent audio")
        speech_used = any("audio" in seg.modalities.split("+") for seg in self._segments)
        short = [self._audio[b.sample_rate] for b in heard
                 if self._audio[b.sample_rate].end < MIN_AUDIO_SECONDS * b.sample_rate]
        if not self.audio_only and heard and len(short) == len(heard) and not speech_used:
            missing.append(f"sound too short to classify ({1000 * short[0].end / short[0].rate:.0f} ms; at least "
                           f"{1000 * MIN_AUDIO_SECONDS:.0f} ms is needed)")
        if heard and self._speechless and not speech_used:
            from mmfer.inference.speech import QUIET_PEAK

            peak = max(self._audio[b.sample_rate].peak for b in heard)
            said = "no speech heard in the sound" + (
                f" (a very quiet one, peak {20 * np.log10(peak):.0f} dBFS: speech this quiet can be missed; "
                "--no-speech-check, speech_check=False, reads it)" if peak < QUIET_PEAK else "")
            missing = [said] if self.audio_only and not missing else [*missing, said]
        segs = self._segments
        fused = summarise(segs)
        branches = {}
        for name in {n for s in segs for n in s.branches}:
            have = [s for s in segs if name in s.branches]
            w = np.array([max(s.seconds, 1e-9) for s in have])
            q = (w[:, None] * np.stack([s.branches[name] for s in have])).sum(axis=0) / w.sum()
            branches[name] = q
        used = [m for m in ("face", "audio") if any(m in s.modalities.split("+") for s in segs)]
        pred = p.make_prediction(self.path, "audio" if self.audio_only else "video", fused, used=used, branches=branches,
                                 face_ratio=(self._n_face / self._n_frames if self._n_frames else None)
                                 if face_branches else None, notes=missing, warnings=notes_w)
        pred.segments = segs
        if self.timeline:
            tl: dict[str, np.ndarray] = {}
            fa = self._frames_all
            if fa["times"]:
                tl["frame_times"] = np.concatenate(fa["times"])
                tl["frame_probs"] = np.concatenate(fa["probs"])
                tl["frame_face"] = np.concatenate(fa["face"])
                tl["frame_boxes"] = np.concatenate(fa["boxes"])
                tl["frame_track"] = np.concatenate(fa["track"])
            if self._windows and heard:
                tl["audio_times"] = np.array([w[0] for w in self._windows])
                tl["audio_probs"] = np.stack([w[1] for w in self._windows])
            pred.timeline = tl
        self.prediction = pred


