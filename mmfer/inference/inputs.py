"""Model inputs built from memory: decoded clips handed to a branch's own dataset code (as in training and
scoring, never a copy), frame pooling, and the sound checks every analysis makes."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from mmfer.data.cache import CachedClip, ClipRecord
from mmfer.data.datasets import DATASETS, CacheDataset
from mmfer.errors import MmferError

# Audio whose peak stays under this (about -80 dBFS) is silence: no speech to classify.
SILENCE_PEAK = 1e-4
# Audio shorter than this holds no utterance to classify (a one-sample wav): no prediction, and a warning.
MIN_AUDIO_SECONDS = 0.1
# Audio timeline of --plots: the audio branches, fused, over windows of this length (s), every hop seconds.
AUDIO_WINDOW_S = 1.0
AUDIO_HOP_S = 0.5

class _InMemory:
    """Mixin over a cache dataset: clips come from memory (``process_clip``'s arrays), not from a cache, so
    predict builds each branch's input with that dataset's own code, exactly as in training and scoring."""

    def __init__(self, clips: Sequence[CachedClip], *, data: Any, sample_rate: int) -> None:
        self._clips = list(clips)
        records = [ClipRecord(clip_id=c.clip_id, split=c.split, label=None, path="", status="ok") for c in clips]
        super().__init__(cache=".", records=records, train=False, data=data, sample_rate=sample_rate)

    def _skip_reason(self, rec: ClipRecord) -> str:
        return ""  # predict checks for faces and sound itself, before asking a branch

    def _load(self, clip: int) -> CachedClip:
        return self._clips[clip]


@lru_cache(maxsize=None)
def _memory_class(kind: str) -> type:
    base = DATASETS[kind]
    return type(f"InMemory{base.__name__}", (_InMemory, base), {})


def memory_dataset(kind: str, clips: Sequence[CachedClip], *, data: Any, sample_rate: int = 16000) -> CacheDataset:
    """The evaluation dataset of input ``kind`` over decoded clips held in memory."""
    if kind not in DATASETS or kind == "face_image":
        raise MmferError(f"memory_dataset: input kind {kind!r} is not read from clips "
                         f"(known: {', '.join(k for k in DATASETS if k != 'face_image')})")
    return _memory_class(kind)(clips, data=data, sample_rate=sample_rate)


def audio_clip(audio: np.ndarray, clip_id: str) -> CachedClip:
    return CachedClip(clip_id=clip_id, split="Test", faces=np.zeros((0, 1, 1, 3), np.uint8),
                      landmarks=np.zeros((0, 68, 2), np.float32), boxes=np.zeros((0, 5), np.float32),
                      mask=np.zeros(0, bool), audio=np.asarray(audio, np.float32), meta={})


FRAME_POOLINGS = ("mean", "log_mean", "confidence")  # pool_frames's methods (a face_image branch's frame_pooling)


def pool_frames(per_frame: np.ndarray, method: str = "mean") -> np.ndarray:
    """One clip's probabilities (7,) from its frames' (N, 7).

    ``mean`` averages probabilities; ``log_mean`` averages log-probabilities (a geometric mean: a class
    must hold up in most frames); ``confidence`` weights each frame by how far its distribution is from
    uniform (1 - normalised entropy), so blurred or half-turned frames, which the model is unsure of, count
    less.
    """
    p = np.clip(np.asarray(per_frame, dtype=np.float64), 1e-8, 1.0)
    if method == "mean":
        out = p.mean(axis=0)
    elif method == "log_mean":
        out = np.exp(np.log(p).mean(axis=0))
    elif method == "confidence":
        w = 1.0 - (-(p * np.log(p)).sum(axis=1) / np.log(p.shape[1]))
        out = (w[:, None] * p).sum(axis=0) / max(float(w.sum()), 1e-12)
    else:
        raise MmferError(f"frame pooling {method!r}; expected {', '.join(FRAME_POOLINGS)}")
    return out / out.sum()


def is_silent(audio: np.ndarray) -> bool:
    return audio.size == 0 or float(np.max(np.abs(audio))) < SILENCE_PEAK


def audio_windows(n: int, sample_rate: int, *, window_s: float = AUDIO_WINDOW_S,
                  hop_s: float = AUDIO_HOP_S) -> list[tuple[int, int]]:
    """Sample ranges of sliding windows over ``n`` samples (one window of everything when shorter)."""
    win, hop = int(round(window_s * sample_rate)), max(1, int(round(hop_s * sample_rate)))
    if n <= win:
        return [(0, n)]
    starts = list(range(0, n - win + 1, hop))
    return [(s, s + win) for s in starts]
