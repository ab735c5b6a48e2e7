"""Segments: a video's timeline cut into windows, each with its own fused prediction.

A video of any length is analysed as a stream and cut into segments of ``seconds`` (4 s by default):
fixed windows, or with ``by="speech"`` windows whose ends move to the quietest moment of the sound within a
quarter of a window, so a segment does not cut a word in two. A remainder shorter than half a window joins the
segment before it, so a 5-s clip is one segment and no segment is a sliver (every segment but a whole video
shorter than half a window lasts between half and one and a half windows).

The one-row-per-file prediction summarises the segments by one rule (``summarise``): the mean of the
segments' probabilities weighted by their length, over the segments where something was seen (a face or
sound); a video that is one segment gets exactly that segment's prediction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS
from mmfer.outputs import CsvStream, read_csv_table
from mmfer.scores import is_uniform

SEGMENT_SECONDS = 4.0
SEGMENT_BY = ("fixed", "speech")
# the columns of --segments: where each segment is, then what it reads (as in the predictions CSV)
SEGMENT_COLUMNS: tuple[str, ...] = ("path", "clip_id", "start", "end", "predicted", *EMOTIONS, "face_ratio",
                                    "modalities", "track")
QUIET_FRAME_S = 0.05  # speech-aware cuts look for the quietest 50 ms


@dataclass(frozen=True)
class SegmentSettings:
    """How a video is cut: ``seconds`` per window, ``by`` fixed or speech (see the module docstring)."""

    seconds: float = SEGMENT_SECONDS
    by: str = "fixed"

    def __post_init__(self) -> None:
        if not (isinstance(self.seconds, (int, float)) and np.isfinite(self.seconds) and self.seconds >= 0.5):
            raise MmferError(f"--segment-seconds {self.seconds!r}: give a length of at least 0.5 s")
        if self.by not in SEGMENT_BY:
            raise MmferError(f"--segment-by {self.by!r}: choose {' or '.join(SEGMENT_BY)}")


@dataclass
class Segment:
    """One window of a video: [start, end) in seconds of the file, its fused probabilities (uniform where
    nothing was seen), the share of its frames with a face, the modalities used and the face track(s)."""

    path: str
    clip_id: str
    start: float
    end: float
    probs: np.ndarray
    face_ratio: float | None
    modalities: str
    track: str = ""
    branches: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def seen(self) -> bool:
        return bool(self.modalities)

    @property
    def predicted(self) -> str:
        """The top class; empty where nothing was seen (uniform probabilities), as in the predictions CSV."""
        if not self.seen or is_uniform(self.probs):
            return ""
        return EMOTIONS[int(np.argmax(self.probs))]

    def row(self) -> list[str]:
        ratio = "" if self.face_ratio is None else f"{self.face_ratio:.3f}"
        return [self.path, self.clip_id, f"{self.start:.3f}", f"{self.end:.3f}", self.predicted,
                *(f"{p:.6f}" for p in self.probs), ratio, self.modalities, self.track]


def next_cut(start: float, settings: SegmentSettings, *, audio: np.ndarray | None = None, audio_start: float = 0.0,
             sample_rate: int = 16000) -> float:
    """Where the segment that begins at ``start`` ends (before the last one): ``start + seconds``, or with
    ``by="speech"`` the centre of the quietest 50 ms of ``audio`` (samples from ``audio_start`` s on) within a
    quarter of a window of it. Without sound there, the fixed end."""
    end = start + settings.seconds
    if settings.by != "speech" or audio is None or audio.size == 0:
        return end
    q = settings.seconds / 4
    hop = max(1, int(round(QUIET_FRAME_S * sample_rate)))
    a0 = int(round((end - q - audio_start) * sample_rate))
    a1 = int(round((end + q - audio_start) * sample_rate))
    a0, a1 = max(0, a0), min(audio.size, a1)
    if a1 - a0 < 2 * hop:
        return end
    part = np.asarray(audio[a0:a1 - (a1 - a0) % hop], np.float64).reshape(-1, hop)
    energy = (part ** 2).mean(axis=1)
    if float(energy.max()) <= 0:
        return end
    k = int(np.argmin(energy))
    return audio_start + (a0 + (k + 0.5) * hop) / sample_rate


def final_cuts(start: float, total: float, settings: SegmentSettings) -> bool:
    """Whether the stretch [start, total) is the last segment (shorter than one and a half windows)."""
    return total - start < 1.5 * settings.seconds


def summarise(segments: Sequence[Segment]) -> np.ndarray | None:
    """The file's probabilities from its segments: their mean weighted by length, over the segments where
    something was seen; None where nothing was seen anywhere."""
    seen = [s for s in segments if s.seen]
    if not seen:
        return None
    w = np.array([max(s.seconds, 1e-9) for s in seen])
    p = (w[:, None] * np.stack([s.probs for s in seen])).sum(axis=0) / w.sum()
    return p / p.sum()


def main_track(tracks: np.ndarray) -> str:
    """The track id(s) of a segment's frames: the face followed longest first, ';'-joined; '' without a face."""
    t = np.asarray(tracks).reshape(-1)
    t = t[t > 0]
    if t.size == 0:
        return ""
    ids, counts = np.unique(t, return_counts=True)
    return ";".join(str(int(i)) for i in ids[np.argsort(-counts, kind="stable")])


# ---------------------------------------------------------------- the CSV
class SegmentWriter(CsvStream):
    """``--segments``: rows appended as segments come, committed a video at a time (``end_video``), so that
    ``close(keep_partial=False)`` after an interruption keeps whole videos."""

    def __init__(self, path: str | Path):
        super().__init__(path, SEGMENT_COLUMNS)

    def add(self, segment: Segment) -> None:
        from mmfer.text import safe_text

        row = segment.row()
        row[0] = safe_text(row[0])
        self.writerow(row)

    end_video = CsvStream.commit


def read_segments(path: str | Path) -> list[dict[str, str]]:
    """Rows of a segments CSV as dicts of text."""
    return read_csv_table(path, SEGMENT_COLUMNS, kind="segments")


# ---------------------------------------------------------------- merging shards
