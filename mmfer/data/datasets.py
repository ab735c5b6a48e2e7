"""Torch datasets, one per model input kind: over the preprocessed cache, or over folders and lists of image or
sound files for the kinds that read files (``mmfer.data.kinds``).

Cached clips are read by memory map (no decoding); sound files are decoded once and their features kept. Every item is a dict ``{"x", "mask", "label", "clip"}`` where
``clip`` is the position of its clip in ``dataset.records``: evaluation datasets may yield several items per
clip (C3D sliding windows), and scorers average probabilities per clip. Randomness (window choice, crops,
augmentation) comes from a generator seeded by (seed, epoch, item), so a run is reproducible whatever the
number of workers, and a resumed run sees exactly the data an unbroken run would.

Clips whose preprocessing failed, or whose modality is empty (no face in any frame, no audio), are left out
here and listed in ``dataset.skipped``; scoring gives them uniform scores.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from mmfer.data.cache import ClipRecord, load_clip
from mmfer.config import from_dict
from mmfer.data.config import AugmentConfig, DataConfig
from mmfer.data.images import read_image_rgb
from mmfer.data.kinds import KINDS, TIME_AXIS
from mmfer.data.sources import (  # noqa: F401 (their old home: importable from here too)
    FILE_SOURCES, file_source, media_folder_records, media_folder_splits, pooled_records, source_records,
    source_splits,
)
from mmfer.errors import MmferError
from mmfer.labels import index_of

log = logging.getLogger(__name__)

# Per-clip arrays a run may set on a training dataset, passed on in items and batches: the classes of each clip's
# corpus (``allowed``), distill.targets (``teacher_probs``), each clip's corpus or speaker index (``domain``).
PER_CLIP = ("allowed", "teacher_probs", "domain")


class CacheDataset(Dataset):
    """Base: the usable clips of one split, their labels, and per-item seeded randomness.

    ``transform``, if given, gets each item (the dict of ``x``, ``mask``, ``label``, ``clip``) and returns the
    item to use: a researcher's own augmentation or feature on top of the kind's own, without a subclass. It
    runs in the loader's workers, so it must be picklable (a module-level function, not a lambda)."""

    kind = ""

    def __init__(
        self,
        *,
        cache: str | Path,
        records: Sequence[ClipRecord],
        train: bool,
        data: DataConfig,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        sample_rate: int = 16000,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ):
        if isinstance(records, (str, Path)) or not all(isinstance(r, ClipRecord) for r in records):
            raise MmferError(f"{type(self).__name__}: records must be ClipRecords, e.g. split_records(cache, 'Train') "
                             f"or source_records(data, 'Train', kind), got {type(records).__name__}")
        # sections given as plain dicts, as YAML would give them, with their keys checked
        data = from_dict(DataConfig, data, where="data") if isinstance(data, dict) else data
        augment = from_dict(AugmentConfig, augment, where="augment") if isinstance(augment, dict) else augment
        self.cache = Path(cache)
        self.transform = transform
        self.train = bool(train)
        self.data = data
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        self.sample_rate = int(sample_rate)
        self.records: list[ClipRecord] = []
        self.labels: list[int] = []
        self.skipped: list[tuple[str, str]] = []  # (clip_id, reason)
        for rec in records:
            reason = self._skip_reason(rec)
            if reason:
                self.skipped.append((rec.clip_id, reason))
                continue
            self.records.append(rec)
            self.labels.append(index_of(rec.label) if rec.label else -1)
        self._index_items()

    # -------------------------------------------------------------- per-kind hooks
    def _skip_reason(self, rec: ClipRecord) -> str:
        if rec.status != "ok":
            return f"preprocessing {rec.status}" + (f": {rec.reason}" if rec.reason else "")
        if self.train and not rec.label:
            return "no label"
        return self._empty_reason(rec)

    def _empty_reason(self, rec: ClipRecord) -> str:
        return ""

    def _index_items(self) -> None:
        """One item per clip by default; sliding-window datasets override."""
        self.items: list[tuple[int, int]] = [(i, 0) for i in range(len(self.records))]

    def _load(self, clip: int):
        # evaluation reads several windows of one clip in a row: keep the last clip's maps open
        last = getattr(self, "_last", None)
        if last is not None and last[0] == clip:
            return last[1]
        rec = self.records[clip]
        c = load_clip(self.cache, rec.split, rec.clip_id, mmap=True)
        self._last = (clip, c)
        return c

    def _make(self, clip: int, sub: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:
        # loader workers get the dataset pickled: send paths, not the last clip's memory maps
        state = dict(self.__dict__)
        state.pop("_last", None)
        state.pop("_last_views", None)
        return state

    # -------------------------------------------------------------- Dataset protocol
    def set_epoch(self, epoch: int) -> None:
        """Training draws new windows/crops/augmentation each epoch, reproducibly."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        clip, sub = self.items[i]
        rng = np.random.default_rng([self.seed, self.epoch, i, 7919])
        x, mask = self._make(clip, sub, rng)
        item = {"x": x, "mask": mask, "label": self.labels[clip], "clip": clip}
        for name in PER_CLIP:
            values = getattr(self, name, None)
            if values is not None:
                item[name] = torch.from_numpy(np.asarray(values[clip]))
        return item if self.transform is None else self.transform(item)

    @property
    def clip_ids(self) -> list[str]:
        return [r.clip_id for r in self.records]

    def describe_skipped(self) -> str:
        if not self.skipped:
            return ""
        reasons: dict[str, int] = {}
        for _, r in self.skipped:
            key = r.split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
        return ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))

    # -------------------------------------------------------------- shared helpers
    def _augmenting(self) -> bool:
        return self.train and self.augment is not None and self.augment.enabled

    def _faces(self, faces: np.ndarray, idx: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """Frames idx as float (T, C, H, W), with one jitter shared by all frames of the clip."""
        from mmfer.data.features import augment_faces, draw_degradation, face_tensor, video_degrade

        frames = np.asarray(faces[idx])
        if self._augmenting() and self.augment.video > 0 and rng.random() < self.augment.video:
            d = draw_degradation(rng)  # one draw for the clip; blur scaled to the crop's size
            d["blur"] *= frames.shape[-2] / 100
            seed = int(rng.integers(2**31))
            frames = np.stack([video_degrade(f, np.random.default_rng(seed), **d) for f in frames])
        x = face_tensor(frames, size=self.data.image_size, grayscale=self.data.grayscale, equalize=self.data.equalize)
        if self._augmenting():
            a = self.augment
            x = augment_faces(
                x, rng=rng, flip=a.flip, crop_scale=tuple(a.crop_scale), brightness=a.brightness, contrast=a.contrast,
                rotation=a.rotation, translate=a.translate, erasing=a.erasing, occlusion=a.occlusion,
            )
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _has_faces(cache: Path, rec: ClipRecord) -> bool:
    # the arrays decide, not the manifest counts, so a hand-made cache cannot mislead us
    return bool(np.asarray(load_clip(cache, rec.split, rec.clip_id, mmap=True).mask).any())


class _FaceMixin:
    def _empty_reason(self, rec: ClipRecord) -> str:
        return "" if _has_faces(self.cache, rec) else "no face in any frame"


class FaceWindowDataset(_FaceMixin, CacheDataset):
    """C3D input: ``clip_len``-frame windows of aligned faces, x (C, T, H, W), mask (T,).

    Training draws one random window per clip per epoch among those with the most faces; evaluation
    yields every window (with stride) that has a face, and the clip score is the mean over its windows
    (Fan et al. 2016).
    """

    kind = "face_window"

    def _index_items(self) -> None:
        self.items = []
        self._masks: list[np.ndarray] = []
        L, stride = self.data.clip_len, max(1, self.data.stride)
        for c, rec in enumerate(self.records):
            mask = np.asarray(self._load(c).mask, dtype=bool)
            self._masks.append(mask)
            if self.train:
                self.items.append((c, 0))
                continue
            T = len(mask)
            starts = list(range(0, max(T - L, 0) + 1, stride))
            if T > L and starts[-1] != T - L:
                starts.append(T - L)
            with_face = [s for s in starts if mask[s : s + L].any()]
            self.items.extend((c, s) for s in (with_face or starts[:1]))

    def _train_start(self, mask: np.ndarray, rng: np.random.Generator) -> int:
        L, T = self.data.clip_len, len(mask)
        if T <= L:
            return 0
        counts = np.convolve(mask.astype(np.int32), np.ones(L, dtype=np.int32), mode="valid")  # per start
        good = np.flatnonzero(counts >= max(1, int(np.ceil(0.5 * counts.max()))))  # prefer windows with faces
        return int(rng.choice(good))

    def _make(self, clip, sub, rng):
        c = self._load(clip)
        mask = self._masks[clip]
        L = self.data.clip_len
        start = self._train_start(mask, rng) if self.train else sub
        idx = np.arange(start, min(start + L, len(mask)))
        x = self._faces(c.faces, idx, rng)  # (t, C, H, W)
        m = torch.from_numpy(mask[idx].copy())
        if len(idx) < L:  # short clip: zero frames, masked out
            x = torch.cat([x, x.new_zeros((L - len(idx), *x.shape[1:]))])
            m = torch.cat([m, m.new_zeros(L - len(idx))])
        x = x * m.view(-1, 1, 1, 1).to(x.dtype)  # no-face frames are zeros, whatever normalisation did
        return x.permute(1, 0, 2, 3).contiguous(), m


class FaceSequenceDataset(_FaceMixin, CacheDataset):
    """CNN-LSTM input: ``num_frames`` frames by segment sampling, x (T, C, H, W), mask (T,) from the cache mask.

    Segments cover the span from the first to the last face frame; training takes a random frame in each
    segment, evaluation the middle one.
    """

    kind = "face_sequence"

    def _make(self, clip, sub, rng):
        c = self._load(clip)
        mask = np.asarray(c.mask, dtype=bool)
        valid = np.flatnonzero(mask)
        lo, hi = (int(valid[0]), int(valid[-1]) + 1) if len(valid) else (0, len(mask))
        n, T = hi - lo, self.data.num_frames
        edges = np.linspace(0, n, T + 1)
        if self.train:
            pos = edges[:-1] + rng.random(T) * (edges[1:] - edges[:-1])
        else:
            pos = (edges[:-1] + edges[1:]) / 2
        idx = lo + np.clip(np.floor(pos).astype(np.int64), 0, n - 1)
        x = self._faces(c.faces, idx, rng)
        m = torch.from_numpy(mask[idx].copy())
        x = x * m.view(-1, 1, 1, 1).to(x.dtype)
        return x, m


class LandmarkDataset(CacheDataset):
    """Landmark BRNN input: normalised shape + motion features x (T, 272), mask (T,).

    Training crops ``max_len`` frames at random inside the tracked span; evaluation takes the whole clip.
    """

    kind = "landmarks"

    def _empty_reason(self, rec: ClipRecord) -> str:
        return "" if _has_faces(self.cache, rec) else "no landmarks in any frame"

    def _make(self, clip, sub, rng):
        from mmfer.data.features import landmark_features

        c = self._load(clip)
        feats, mask = landmark_features(
            np.asarray(c.landmarks, dtype=np.float32), np.asarray(c.mask, dtype=bool), interpolate=self.data.interpolate
        )
        valid = np.flatnonzero(mask)
        if len(valid):
            lo, hi = int(valid[0]), int(valid[-1]) + 1
            if self.train and hi - lo > self.data.max_len:
                lo = int(rng.integers(lo, hi - self.data.max_len + 1))
                hi = lo + self.data.max_len
            feats, mask = feats[lo:hi], mask[lo:hi]
        return torch.from_numpy(np.ascontiguousarray(feats)), torch.from_numpy(mask.copy())


class LogMelDataset(CacheDataset):
    """Audio CNN input: log-mel x (1, n_mels, T), standardised per clip; mask (T,) all True (padding adds False).

    Training crops ``audio_seconds`` at random and applies SpecAugment; evaluation takes the whole clip.
    """

    kind = "logmel"

    def _empty_reason(self, rec: ClipRecord) -> str:
        audio = load_clip(self.cache, rec.split, rec.clip_id, mmap=True).audio
        return "" if audio.size > 0 and np.any(np.asarray(audio) != 0) else "no audio"

    def _audio(self, clip: int) -> np.ndarray:
        return np.asarray(self._load(clip).audio, dtype=np.float32)

    def _waveform(self, clip: int, rng: np.random.Generator | None, *, whole: bool = False) -> np.ndarray:
        """The clip's audio as the model hears it: finite, trimmed, and in training (unless ``whole``)
        cropped and augmented."""
        from mmfer.data.audio import augment_waveform, remove_dc, sanitise_audio, trim_silence

        audio = remove_dc(sanitise_audio(self._audio(clip))[0])
        if self.data.trim_silence:
            audio = trim_silence(audio, sample_rate=self.sample_rate, top_db=self.data.trim_db)
        if whole:
            return audio
        if self.train and self.data.audio_seconds:
            n = int(round(self.data.audio_seconds * self.sample_rate))
            if len(audio) > n:
                start = int(rng.integers(0, len(audio) - n + 1))
                audio = audio[start : start + n]
        if self._augmenting():
            audio = augment_waveform(audio, rng=rng, sample_rate=self.sample_rate, augment=self.augment)
        return audio

    def _make(self, clip, sub, rng):
        from mmfer.data.features import augment_log_mel, log_mel

        audio = self._waveform(clip, rng)
        spec = np.asarray(log_mel(audio, sample_rate=self.sample_rate, n_mels=self.data.n_mels), dtype=np.float32)
        spec = (spec - spec.mean()) / (spec.std() + 1e-5)  # gain-invariant, keeps the spectral shape
        if self._augmenting():
            spec = augment_log_mel(spec, rng=rng, augment=self.augment, sample_rate=self.sample_rate)
        spec = np.ascontiguousarray(spec, dtype=np.float32)
        return torch.from_numpy(spec)[None], torch.ones(spec.shape[-1], dtype=torch.bool)


# Utterance statistics of unaugmented clips, kept for the life of the process: cross-validation folds,
# epochs and the several fold models of a bundle see the same clips again (about 0.4 KB a clip). Keyed by
# a hash of the samples and the trimming settings.
_UTTERANCE_FEATURES: dict[tuple, torch.Tensor] = {}


class AudioStatsDataset(LogMelDataset):
    """Utterance statistics x (F,) (pitch, energy, spectral shape, MFCCs: ``mmfer.data.audio``) of the
    whole, trimmed clip, for the ``audio_stats`` branch.

    Without waveform augmentation a clip's vector never changes, so it is computed once and kept. With it
    and ``augment.stats_copies`` K > 0, each clip gets K augmented versions (speed factors spread evenly
    over ``augment.speed``, the other waveform augmentations drawn once per copy), also computed once and
    kept; each epoch serves the clip or one of its copies at random. With K = 0 every item is augmented
    afresh (a feature extraction per item and epoch: slow).
    """

    kind = "audio_stats"

    def _waveform_augmenting(self) -> bool:
        a = self.augment
        return self._augmenting() and (a.speed[1] > a.speed[0] or a.reverb > 0 or a.eq > 0 or a.noise > 0
                                       or a.codec > 0)

    def _make(self, clip, sub, rng):
        from mmfer.data.audio import augment_waveform, change_speed, utterance_features

        copies = self.augment.stats_copies if self._waveform_augmenting() else 0
        if self._waveform_augmenting() and copies == 0:
            return torch.from_numpy(utterance_features(self._waveform(clip, rng), sample_rate=self.sample_rate)), None
        copy = int(rng.integers(0, copies + 1)) if copies else 0  # 0: the clip as it is
        raw = np.ascontiguousarray(self._audio(clip), dtype=np.float32)
        # keyed by the samples themselves: two files with one clip id, or predict's windows of one clip,
        # can never be served each other's statistics
        digest = hashlib.blake2b(raw.tobytes(), digest_size=16).hexdigest()
        key = (digest, raw.size, self.sample_rate, bool(self.data.trim_silence), float(self.data.trim_db))
        if copy:
            a = self.augment
            factor = float(np.linspace(a.speed[0], a.speed[1], copies)[copy - 1]) if copies > 1 else a.speed[1]
            key += (copy, copies, dataclasses.astuple(a))
        x = _UTTERANCE_FEATURES.get(key)
        if x is None:
            x = _disk_features(key)
            if x is not None:
                _UTTERANCE_FEATURES[key] = x
        if x is None:
            audio = self._waveform(clip, None, whole=True)
            if copy:  # the same copy in every epoch, fold and process: seeded by the samples and the copy
                audio = augment_waveform(change_speed(audio, factor),
                                         rng=np.random.default_rng([copy, int(digest[:12], 16)]),
                                         sample_rate=self.sample_rate, augment=dataclasses.replace(a, speed=(1.0, 1.0)))
            x = torch.from_numpy(utterance_features(audio, sample_rate=self.sample_rate))
            if len(_UTTERANCE_FEATURES) >= 200_000:  # bounded, however many files a process sees (~100 MB)
                _UTTERANCE_FEATURES.clear()
            _UTTERANCE_FEATURES[key] = x
            _disk_features(key, x)
        return x, None


@functools.lru_cache(maxsize=1)
def _feature_code_version() -> str:
    """A hash of the code that makes the statistics (mmfer/data/audio.py): any change there starts afresh."""
    import inspect

    import mmfer.data.audio as audio_module

    return hashlib.blake2b(inspect.getsource(audio_module).encode(), digest_size=8).hexdigest()


def _disk_features(key: tuple, x: torch.Tensor | None = None) -> torch.Tensor | None:
    """Utterance statistics kept on disk across processes, in ``$MMFER_FEATURE_CACHE`` when it is set (one
    small .npy per clip and copy, named by a hash of the samples, the settings and the feature code): the
    several cross-validations of a study then extract each clip once. Reads (``x`` None) or writes ``x``."""
    import os

    root = os.environ.get("MMFER_FEATURE_CACHE")
    if not root:
        return None
    name = hashlib.blake2b(repr((key, _feature_code_version())).encode(), digest_size=16).hexdigest()
    path = Path(root) / name[:2] / f"{name}.npy"
    if x is None:
        try:
            return torch.from_numpy(np.load(path, allow_pickle=False).astype(np.float32, copy=False))
        except (OSError, ValueError):
            return None
    try:
        from mmfer.outputs import atomic_write

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as f:
            np.save(f, x.numpy(), allow_pickle=False)
    except OSError as e:  # a full or read-only disk only costs the speed-up
        log.debug("feature cache %s not written: %s", path, e)
    return None


class _AudioFiles:
    """Audio read straight from files (``mmfer train --data`` an audio folder tree), not from a cache. Each file
    is decoded once, at construction, so a file that does not decode is skipped with its reason instead of
    failing an epoch; speech corpora are small (RAVDESS: 900 clips, about 200 MB)."""

    def __init__(self, **kwargs: Any) -> None:
        self._decoded: list[np.ndarray] = []  # filled by _skip_reason, in the order records are kept
        super().__init__(**kwargs)

    def _skip_reason(self, rec: ClipRecord) -> str:
        from mmfer.data.video import read_audio

        if self.train and not rec.label:
            return "no label"
        try:
            audio = _decoded_file(rec.path, self.sample_rate, read_audio)
        except Exception as e:  # noqa: BLE001 - any decoder failure is a skip reason, named
            log.warning("%s; left out", e if str(e).startswith(str(rec.path)) else f"{rec.path}: {e}")  # once
            return f"unreadable: {e}"
        if audio.size == 0 or not np.any(audio != 0):  # named, as a file that does not decode is
            log.warning("%s: %s; left out", rec.path, "no sound decodes from it" if audio.size == 0 else "silent")
            return "no audio"
        self._decoded.append(audio)
        return ""

    def _audio(self, clip: int) -> np.ndarray:
        return self._decoded[clip]


# Decoded audio files, kept for the life of the process up to _DECODED_LIMIT bytes (oldest out first): the
# train, validation and Test datasets of every fold of a cross-validation read the same files, and decoding
# them again for each (8,500 files of a speech list, 7 folds) cost minutes a fold and grew the process to
# 14 GB. Keyed by the file's path, size and time, so a changed file is read again; read-only arrays.
_DECODED: dict[tuple, np.ndarray] = {}
_DECODED_LIMIT = 3 * 2**30
_DECODED_HELD = [0]  # bytes in _DECODED


def _decoded_file(path: str, sample_rate: int, read) -> np.ndarray:
    import os

    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns, int(sample_rate))
    audio = _DECODED.get(key)
    if audio is None:
        audio = np.ascontiguousarray(read(path, sample_rate=sample_rate), dtype=np.float32)
        audio.flags.writeable = False
        while _DECODED and _DECODED_HELD[0] + audio.nbytes > _DECODED_LIMIT:
            _DECODED_HELD[0] -= _DECODED.pop(next(iter(_DECODED))).nbytes
        _DECODED[key] = audio
        _DECODED_HELD[0] += audio.nbytes
    return audio


class AudioFileDataset(_AudioFiles, LogMelDataset):
    """Log-mel input from audio files."""


class AudioStatsFileDataset(_AudioFiles, AudioStatsDataset):
    """Utterance statistics from audio files."""


class FaceImageDataset(CacheDataset):
    """Single face images from a folder tree ``ROOT/<split>/<Emotion>/*.jpg`` (FER2013 layout), x (C, H, W).

    Stage one of two-stage fine-tuning: a face_frame model trained here lends its encoder to the CNN-LSTM.
    """

    kind = "face_image"

    def _skip_reason(self, rec: ClipRecord) -> str:
        return "no label" if self.train and not rec.label else ""

    def _index_items(self) -> None:
        # evaluation yields one item per test-time view; scoring averages them per image like C3D windows
        self._views = 1 if self.train else int(self.data.eval_views)
        self.items = [(i, v) for i in range(len(self.records)) for v in range(self._views)]

    def _make(self, clip, sub, rng):
        from mmfer.data.features import crop_views

        last = getattr(self, "_last_views", None)  # an image's views come in a row: read and cut it once
        if last is not None and last[0] == clip:
            return torch.from_numpy(last[1][sub]), None
        path = self.records[clip].path
        try:
            rgb = read_image_rgb(path)  # as predict reads it: upright, transparency over white
        except MmferError as e:  # its reason as read_image_rgb says it (too large: downscale; corrupt: replace)
            raise MmferError(f"{path}: {e}" + ("; delete or replace it" if "not a readable image" in str(e) else "")
                             ) from None
        x = self._faces(rgb[None], np.array([0]), rng)[0]
        if self._views == 1:
            return x, None
        views = crop_views(x.numpy(), views=self._views)
        self._last_views = (clip, views)
        return torch.from_numpy(views[sub]), None


# The dataset of each input kind, and of the kinds that can also read files, the one that does (face images
# always come from files): named in the kinds table (mmfer.data.kinds).
DATASETS: dict[str, type[CacheDataset]] = {k: globals()[v.dataset] for k, v in KINDS.items()}
FILE_DATASETS: dict[str, type[CacheDataset]] = {k: globals()[v.file_dataset] for k, v in KINDS.items() if v.file_dataset}


def build_dataset(kind: str, *, cache: str | Path, **options: Any) -> CacheDataset:
    """The dataset for a model's ``input_kind`` over ``cache``, the data source (an audio folder gives an
    :class:`AudioFileDataset`); ``options`` are :class:`CacheDataset`'s: ``records`` (e.g.
    ``split_records(cache, "Val")``), ``train``, ``data``, ``augment``, ``seed``, ``sample_rate``, ``transform``."""
    if kind not in DATASETS:
        raise MmferError(f"input kind {kind!r} has no dataset (known: {', '.join(DATASETS)})")
    source = file_source(cache, kind)
    if source == "image" and (Path(cache) / "manifest.jsonl").exists():  # its records would be the videos
        raise MmferError(f"{cache}: a preprocess cache, but {kind} reads an image folder tree "
                         "ROOT/<split>/<Emotion>/*.jpg (FER2013 layout)")
    cls = FILE_DATASETS[kind] if source == "audio" else DATASETS[kind]
    return cls(cache=cache, **options)


def pad_collate(items: list[dict[str, Any]], *, time_axis: int | None) -> dict[str, Any]:
    """Stack items, padding x along its time axis with zeros and the mask with False (no axis: mask None)."""
    xs = [it["x"] for it in items]
    out = {
        "x": None,
        "mask": None,
        "label": torch.tensor([it["label"] for it in items], dtype=torch.long),
        "clip": torch.tensor([it["clip"] for it in items], dtype=torch.long),
    }
    for name in PER_CLIP:
        if name in items[0]:
            out[name] = torch.stack([it[name] for it in items])
    if time_axis is None:
        out["x"] = torch.stack(xs)
        return out
    ax = time_axis % xs[0].dim()
    T = max(x.shape[ax] for x in xs)
    out["x"] = xs[0].new_zeros((len(xs), *[T if d == ax else s for d, s in enumerate(xs[0].shape)]))
    out["mask"] = torch.zeros((len(xs), T), dtype=torch.bool)
    for i, it in enumerate(items):
        n = it["x"].shape[ax]
        out["x"][i].narrow(ax, 0, n).copy_(it["x"])
        out["mask"][i, :n] = it["mask"] if it["mask"] is not None else True
    return out


def collate_for(kind: str):
    """The picklable collate function for an input kind (works with worker processes)."""
    return functools.partial(pad_collate, time_axis=TIME_AXIS[kind])


def seed_worker(worker_id: int) -> None:
    """Every DataLoader worker's start (``worker_init_fn``): seed numpy/random from torch's per-worker seed (for
    any library randomness), and let the first SIGTERM pass. A stop sent to the whole process group (systemd,
    Slurm, ``kill -- -PGID``) would otherwise kill the workers first, and the main process would die on torch's
    "worker killed by signal" error instead of stopping as after Ctrl-C (finished epochs kept, exit 130); the main
    process then shuts its workers down itself. A second SIGTERM ends the worker as usual, so the terminate()
    that torch and multiprocessing send a hung worker still works."""
    import random
    import signal

    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)

    def let_the_first_pass(signum, frame):  # noqa: ANN001 - the signal module's signature
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, let_the_first_pass)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # forked while start_iter held stops back
