"""Tiny generated caches where the class lives in exactly one modality.

Why: a branch that reaches well above chance on such a cache provably learns from its own modality
(the others are noise), and the whole train/score path can be exercised in seconds without real data.
Used by the tests only (tests/engine, tests/data): it moved here from mmfer/engine/synthetic.py (issue 22).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmfer.data.cache import ClipRecord, PreprocessSettings, append_manifest, write_clip
from mmfer.faces.align import TEMPLATE_68
from mmfer.labels import EMOTIONS

MODALITIES = ("faces", "landmarks", "audio")
# iBUG-68 groups: one per class, the group that moves for that class in the landmark modality
_GROUPS = (slice(0, 17), slice(17, 22), slice(22, 27), slice(27, 36), slice(36, 42), slice(42, 48), slice(48, 68))


def synthetic_settings(*, crop_size: int = 32, sample_rate: int = 16000) -> PreprocessSettings:
    return PreprocessSettings(face_backend="none", crop_size=crop_size, sample_rate=sample_rate)


def _faces(c: int | None, T: int, S: int, rng: np.random.Generator) -> np.ndarray:
    faces = rng.integers(0, 40, size=(T, S, S, 3)).astype(np.float32) + 80
    if c is not None:
        # two cues: the overall level (kept by plain CNNs) and a bright horizontal band whose height codes
        # the class (kept by histogram equalisation); both survive a horizontal flip
        faces += 22.0 * c - 60
        band = S / len(EMOTIONS)
        lo, hi = int(round(c * band)), int(round((c + 1) * band))
        faces[:, lo:hi] += 90
    return np.clip(faces, 0, 255).astype(np.uint8)


def _landmarks(c: int | None, T: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    pts = np.repeat(TEMPLATE_68[None].astype(np.float64), T, axis=0)  # unit-square template
    pts += rng.normal(0, 0.004, size=pts.shape)
    t = np.arange(T) / fps
    if c is not None:  # the class's group oscillates vertically
        pts[:, _GROUPS[c], 1] += 0.05 * np.sin(2 * np.pi * 3.0 * t + rng.uniform(0, 2 * np.pi))[:, None]
    scale, angle = rng.uniform(80, 160), rng.uniform(-0.3, 0.3)  # rigid pose: random per clip
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = (pts - 0.5) @ rot.T * scale + rng.uniform(150, 300, size=2)
    return pts.astype(np.float32)


def _audio(c: int | None, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    n = int(seconds * sr)
    audio = rng.normal(0, 0.05, size=n)
    if c is not None:  # a class-specific tone
        f = 300.0 * 1.45**c
        audio += 0.3 * np.sin(2 * np.pi * f * np.arange(n) / sr + rng.uniform(0, 2 * np.pi))
    return audio.astype(np.float32)


def make_synthetic_cache(
    cache: str | Path,
    *,
    modality: str,
    per_class: dict[str, int] | None = None,
    frames: tuple[int, int] = (20, 32),
    crop_size: int = 32,
    audio_seconds: float = 1.0,
    sample_rate: int = 16000,
    fps: float = 25.0,
    no_face_ratio: float = 0.15,
    extras: bool = True,
    seed: int = 0,
) -> Path:
    """Write a cache whose labels live only in ``modality`` ("faces", "landmarks" or "audio").

    ``per_class``: clips per class and split (default Train 6, Val 3, Test 1; Test clips are unlabelled).
    ``extras`` adds, to Val and Test, one failed clip and one clip with no face and no audio, which branches
    must skip in training and score uniform.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    per_class = per_class or {"Train": 6, "Val": 3, "Test": 1}
    settings = synthetic_settings(crop_size=crop_size, sample_rate=sample_rate)
    rng = np.random.default_rng(seed)
    cache = Path(cache)

    def record(split, cid, label, status="ok", reason="", T=0, face_frames=0, secs=0.0):
        return ClipRecord(clip_id=cid, split=split, label=label, path=f"synthetic/{split}/{cid}.avi", status=status,
                          reason=reason, frames=T, face_frames=face_frames, audio_seconds=secs, fps=fps,
                          settings_hash=settings.hash, settings=settings.to_dict())

    for split, n in per_class.items():
        for c, emotion in enumerate(EMOTIONS):
            for k in range(n):
                cid = f"{split.lower()}_{emotion.lower()}_{k:02d}"
                T = int(rng.integers(frames[0], frames[1] + 1))
                mask = rng.random(T) >= no_face_ratio
                mask[rng.integers(T)] = True
                faces = _faces(c if modality == "faces" else None, T, crop_size, rng)
                faces[~mask] = 0
                lms = _landmarks(c if modality == "landmarks" else None, T, fps, rng)
                lms[~mask] = np.nan
                boxes = np.zeros((T, 5), np.float32)
                boxes[~mask] = np.nan
                audio = _audio(c if modality == "audio" else None, audio_seconds, sample_rate, rng)
                label = emotion if split != "Test" else None
                write_clip(cache, split, cid, {"faces": faces, "landmarks": lms, "boxes": boxes, "mask": mask,
                                               "audio": audio},
                           {"fps": fps, "frames": T, "label": label, "settings": settings.to_dict()})
                append_manifest(cache, record(split, cid, label, T=T, face_frames=int(mask.sum()), secs=audio_seconds))
        if extras and split != "Train":
            label = EMOTIONS[0] if split != "Test" else None
            append_manifest(cache, record(split, f"{split.lower()}_failed", label, status="failed",
                                          reason="synthetic decode error"))
            cid, T = f"{split.lower()}_empty", 12
            write_clip(cache, split, cid, {
                "faces": np.zeros((T, crop_size, crop_size, 3), np.uint8),
                "landmarks": np.full((T, 68, 2), np.nan, np.float32), "boxes": np.full((T, 5), np.nan, np.float32),
                "mask": np.zeros(T, bool), "audio": np.zeros(0, np.float32)},
                {"fps": fps, "frames": T, "label": label, "settings": settings.to_dict()})
            append_manifest(cache, record(split, cid, label, T=T))
    return cache
