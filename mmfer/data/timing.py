"""When each source frame of a video is shown, and which source frame each analysed instant takes.

Why a module of its own: decoding (``mmfer.data.video``) and analysis meet here. A header's frame rate can lie (a
variable-rate phone or browser recording, an AVI claiming 100,000 frames/s), so frames are timed by their own
timestamps, and the fixed-rate grid the models see is filled with the frame on screen at each instant."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A header frame rate beyond this is not a real one (an AVI claiming 100,000 frames/s): frames are timed at
# FALLBACK_FPS instead, with a note, rather than squeezed into a millisecond.
MAX_PLAUSIBLE_FPS = 1000.0
FALLBACK_FPS = 25.0


@dataclass
class FrameTiming:
    """When each source frame is shown: ``times`` (s, from the first frame), ``duration`` (to the end of the
    last frame), ``rate`` (frames per second: the header's for evenly spaced frames, else the mean),
    ``vfr`` (not evenly spaced) and a ``note`` when the header's rate could not be trusted."""

    times: np.ndarray
    duration: float
    rate: float
    vfr: bool = False
    note: str = ""


def frame_timing(n: int, header_fps: float, timestamps: np.ndarray | None = None) -> FrameTiming:
    """The timing of ``n`` source frames from their presentation timestamps (decord's, or PyAV's), falling back
    to the header's frame rate where they are missing or not plausible.

    Why: the header's average rate is wrong for a variable-frame-rate file (a phone or screen recording:
    13 s of frames would be timed as 3 s), and a header can claim any rate (100,000 frames/s)."""
    header = float(header_fps) if header_fps and np.isfinite(header_fps) and header_fps > 0 else 0.0
    note = ""
    if not header or header > MAX_PLAUSIBLE_FPS:
        if header:
            note = (f"the header claims {header:g} frames/s, which no camera gives; frames timed at "
                    f"{FALLBACK_FPS:g} frames/s")
        header = FALLBACK_FPS
        timestamps = None  # timestamps written from that rate are no better
    uniform = np.arange(n, dtype=np.float64) / header
    if timestamps is None or n < 2:
        return FrameTiming(uniform, n / header, header, False, note)
    t = np.asarray(timestamps, dtype=np.float64).reshape(-1)[:n]
    if len(t) != n or not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        return FrameTiming(uniform, n / header, header, False, note)
    t = t - t[0]
    step = float(np.median(np.diff(t)))
    duration = float(t[-1] + step)
    if n / duration > MAX_PLAUSIBLE_FPS:
        return FrameTiming(np.arange(n) / FALLBACK_FPS, n / FALLBACK_FPS, FALLBACK_FPS, False,
                           f"frame timestamps give {n / duration:g} frames/s; frames timed at {FALLBACK_FPS:g} frames/s")
    # evenly spaced at the header's rate (within half a frame): the header's rate, as before
    if np.max(np.abs(t - uniform)) <= 0.5 / header:
        return FrameTiming(uniform, n / header, header, False, note)
    return FrameTiming(t, duration, n / duration, True, note)


def timed_indices(timing: FrameTiming, fps: float, max_frames: int | None, start: float = 0.0) -> np.ndarray:
    """Source frame per output frame when output frame k is shown at ``start`` + k / ``fps`` and the source
    frames at ``timing.times``: the source frame on screen then (the last one shown at or before it; not the
    nearest, which in a hole of a variable-rate recording would show the frame after the hole too early). Used
    where frames are not evenly spaced."""
    n_out = int(round((timing.duration - start) * fps)) if start > 0 else max(1, int(round(timing.duration * fps)))
    t_out = start + np.arange(max(0, n_out)) / fps
    if max_frames is not None:
        t_out = t_out[:max_frames]
    times = timing.times
    if len(times) < 2:
        return np.zeros(len(t_out), dtype=np.int64)
    # 1 us of slack: k / fps computed as 0.99999999 still shows the frame stamped 1.0
    j = np.searchsorted(times, t_out + 1e-6, side="right") - 1
    return np.clip(j, 0, len(times) - 1).astype(np.int64)


def output_indices(n_src: int, src_fps: float, fps: float | None, max_frames: int | None,
                    start: float = 0.0) -> np.ndarray:
    """Source frame per output frame: output frame k is shown at time ``start`` + k / fps."""
    first = int(round(start * src_fps)) if start > 0 else 0
    if fps is None or fps <= 0 or abs(fps - src_fps) < 1e-3:
        idx = np.arange(min(first, n_src), n_src, dtype=np.int64)
    else:
        t_out = max(0 if first else 1, int(round((n_src - first) * fps / src_fps)))
        idx = np.minimum(np.round(start * src_fps + np.arange(t_out) * src_fps / fps).astype(np.int64), n_src - 1)
    if max_frames is not None:
        idx = idx[:max_frames]
    return idx
