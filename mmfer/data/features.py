"""Input features of the branches, as pure numpy functions (float32 out): landmark tracks, log-mel
spectrograms with SpecAugment, and face crops as normalised tensors with clip-consistent augmentation.

Pure functions so datasets, ``mmfer predict`` and tests compute exactly the same thing.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from mmfer.errors import MmferError

# Face pixel normalisation: x / 255 -> (x - FACE_MEAN) / FACE_STD, roughly zero mean / unit scale.
FACE_MEAN = 0.5
FACE_STD = 0.25

LANDMARK_FEATURES = 272  # 136 positions + 136 frame-to-frame motions


# ---------------------------------------------------------------- landmarks
_EYE_L = slice(36, 42)
_EYE_R = slice(42, 48)


def _normalise(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 68, 2) -> centred on the mean, divided by inter-ocular distance; also returns ok (N,) (IOD > 0)."""
    centred = points - points.mean(axis=1, keepdims=True)
    iod = np.linalg.norm(points[:, _EYE_R].mean(axis=1) - points[:, _EYE_L].mean(axis=1), axis=-1)
    ok = np.isfinite(iod) & (iod > 1e-6)
    return centred / np.where(ok, iod, 1.0)[:, None, None], ok


@lru_cache(maxsize=1)
def _mean_shape() -> np.ndarray:
    """The mean face of faces.align, normalised like every frame (uniform scale, so its shape is kept)."""
    from mmfer.faces.align import template_68

    shape, _ = _normalise(np.asarray(template_68(1), dtype=np.float64)[None])
    return shape[0]


def _procrustes(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Similarity (rotation + scale, no reflection) fit of each centred (N, 68, 2) shape onto ``target``.

    In 2D the least-squares similarity is one complex factor a = <z, t> / <z, z>.
    """
    z = points[..., 0] + 1j * points[..., 1]
    t = target[:, 0] + 1j * target[:, 1]
    a = (np.conj(z) * t).sum(axis=1) / np.maximum((np.abs(z) ** 2).sum(axis=1), 1e-12)
    w = a[:, None] * z
    return np.stack([w.real, w.imag], axis=-1)


def landmark_features(
    landmarks: np.ndarray, mask: np.ndarray, *, interpolate: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(T, 68, 2) landmarks (NaN where missing) and mask (T,) -> features (T, 272) float32 and mask (T,).

    Per frame: centre, scale by inter-ocular distance, similarity-Procrustes onto the mean face (removes
    translation, scale and in-plane rotation), then 136 position features (offset from the mean face) and
    136 motion features (change from the previous frame). Missing frames inside the first..last valid
    frame are linearly interpolated and marked valid when ``interpolate``; frames outside stay masked
    (features copied from the nearest valid frame). ``interpolate=False`` leaves missing frames zero and masked.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise MmferError(f"landmark_features: landmarks have shape {lm.shape}, expected (T, 68, 2)")
    m = np.asarray(mask, dtype=bool).reshape(-1)
    if m.shape[0] != lm.shape[0]:
        raise MmferError(f"landmark_features: mask has {m.shape[0]} frames, landmarks {lm.shape[0]}")
    t = lm.shape[0]
    feats = np.zeros((t, LANDMARK_FEATURES), dtype=np.float32)
    valid = m & np.isfinite(lm).all(axis=(1, 2))
    if valid.any():
        norm, ok = _normalise(np.nan_to_num(lm[valid]))
        idx = np.flatnonzero(valid)[ok]
        valid[:] = False
        valid[idx] = True
    if not valid.any():
        return feats, np.zeros(t, dtype=bool)
    mean = _mean_shape()
    aligned = _procrustes(norm[ok], mean) - mean  # (V, 68, 2) offsets from the mean face
    pos = np.zeros((t, 136), dtype=np.float64)
    if interpolate:
        frames = np.arange(t)
        flat = aligned.reshape(len(idx), 136)
        for j in range(136):  # np.interp holds the edge values outside [first, last]
            pos[:, j] = np.interp(frames, idx, flat[:, j])
        out_mask = (frames >= idx[0]) & (frames <= idx[-1])
        motion = np.zeros_like(pos)
        motion[1:] = pos[1:] - pos[:-1]
    else:
        pos[idx] = aligned.reshape(len(idx), 136)
        out_mask = valid.copy()
        motion = np.zeros_like(pos)
        both = out_mask[1:] & out_mask[:-1]
        motion[1:][both] = (pos[1:] - pos[:-1])[both]
    feats[:, :136] = pos
    feats[:, 136:] = motion
    return feats, out_mask


# ---------------------------------------------------------------- audio
@lru_cache(maxsize=8)
def _mel_transform(sample_rate: int, n_fft: int, win: int, hop: int, n_mels: int):
    import torchaudio

    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, win_length=win, hop_length=hop, n_mels=n_mels, power=2.0
    )


def log_mel(
    audio: np.ndarray, *, sample_rate: int = 16000, n_mels: int = 64, win_ms: float = 25, hop_ms: float = 10
) -> np.ndarray:
    """Mono audio (N,) -> log(mel power + 1e-6) of shape (n_mels, T), T >= 1 even for empty audio."""
    import torch

    a = np.asarray(audio, dtype=np.float32)
    if a.ndim != 1:
        raise MmferError(f"log_mel: audio has shape {a.shape}, expected mono (N,)")
    win = max(1, int(round(sample_rate * win_ms / 1000)))
    hop = max(1, int(round(sample_rate * hop_ms / 1000)))
    n_fft = 1 << (win - 1).bit_length()
    if a.shape[0] < n_fft:  # centre padding needs at least n_fft // 2 + 1 samples
        a = np.pad(a, (0, n_fft - a.shape[0]))
    a = np.nan_to_num(a)
    with torch.no_grad():
        mel = _mel_transform(sample_rate, n_fft, win, hop, n_mels)(torch.from_numpy(a))
    return torch.log(mel + 1e-6).numpy().astype(np.float32)


def warp_frequency(spec: np.ndarray, factor: float, *, sample_rate: int = 16000) -> np.ndarray:
    """Vocal tract length perturbation of a (n_mels, T) log-mel spectrogram made by ``log_mel``: the output at
    frequency f is the input at f / factor (formants and harmonics scaled by ``factor``, tempo kept), read by
    linear interpolation between mel bands; bands beyond the input's top repeat its top band.

    Why: a speaker's vocal tract length moves every formant by one factor; a model that hears few speakers
    learns their formants as emotion."""
    s = np.asarray(spec, dtype=np.float32)
    if s.ndim != 2:
        raise MmferError(f"warp_frequency: spectrogram has shape {s.shape}, expected (n_mels, T)")
    if not factor > 0:
        raise MmferError(f"warp_frequency: factor must be > 0, got {factor}")
    n = s.shape[0]
    if factor == 1.0 or n < 2:
        return s.copy()
    # log_mel's bands (torchaudio's HTK mel scale from 0 Hz to Nyquist): centre of band i is mel point i + 1
    top = 2595.0 * np.log10(1.0 + (sample_rate / 2) / 700.0)
    step = top / (n + 1)
    centres = 700.0 * (10.0 ** (step * np.arange(1, n + 1) / 2595.0) - 1.0)
    source = 2595.0 * np.log10(1.0 + centres / factor / 700.0) / step - 1.0
    source = np.clip(source, 0.0, n - 1.0)
    lo = np.floor(source).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    w = (source - lo).astype(np.float32)[:, None]
    return (s[lo] * (1.0 - w) + s[hi] * w).astype(np.float32)


def spec_augment(
    spec: np.ndarray,
    *,
    rng: np.random.Generator,
    freq_masks: int = 2,
    freq_width: int = 8,
    time_masks: int = 2,
    time_width: int = 20,
) -> np.ndarray:
    """SpecAugment (Park et al. 2019) frequency and time masking of a (n_mels, T) spectrogram (a copy).

    Masked bins get the spectrogram's mean, the neutral value for a log-mel input; widths are drawn from
    [0, width] and clipped to the spectrogram, so any length (even T = 1) is safe.
    """
    s = np.array(spec, dtype=np.float32, copy=True)
    if s.ndim != 2:
        raise MmferError(f"spec_augment: spectrogram has shape {s.shape}, expected (n_mels, T)")
    if s.size == 0:
        return s
    fill = float(s.mean())
    n_f, n_t = s.shape
    for _ in range(freq_masks):
        w = int(rng.integers(0, min(freq_width, n_f) + 1))
        f0 = int(rng.integers(0, n_f - w + 1))
        s[f0 : f0 + w] = fill
    for _ in range(time_masks):
        w = int(rng.integers(0, min(time_width, n_t) + 1))
        t0 = int(rng.integers(0, n_t - w + 1))
        s[:, t0 : t0 + w] = fill
    return s


def augment_log_mel(spec: np.ndarray, *, rng: np.random.Generator, augment, sample_rate: int = 16000) -> np.ndarray:
    """A training item's log-mel augmentations as ``augment`` (an ``AugmentConfig``) sets them: a frequency
    warp drawn from ``augment.freq_warp``, then SpecAugment masks."""
    lo, hi = augment.freq_warp
    if (lo, hi) != (1.0, 1.0):
        spec = warp_frequency(spec, float(rng.uniform(lo, hi)), sample_rate=sample_rate)
    if augment.spec_augment:
        spec = spec_augment(spec, rng=rng, freq_masks=augment.freq_masks, freq_width=augment.freq_width,
                            time_masks=augment.time_masks, time_width=augment.time_width)
    return spec


# ---------------------------------------------------------------- faces
def face_tensor(
    faces: np.ndarray, *, size: int | None = None, grayscale: bool = False, equalize: bool = False
) -> np.ndarray:
    """uint8 RGB faces (..., H, W, 3) -> float32 (..., C, H', W') normalised with FACE_MEAN / FACE_STD.

    ``equalize``: histogram equalisation of each frame's luminance (illumination normalisation, Kuo et al.
    2018); ``grayscale``: C = 1; ``size``: resize to size x size.
    """
    import cv2

    f = np.asarray(faces)
    if f.ndim < 3 or f.shape[-1] != 3:
        raise MmferError(f"face_tensor: faces have shape {f.shape}, expected (..., H, W, 3) RGB")
    if f.dtype != np.uint8:
        f = np.clip(f, 0, 255).astype(np.uint8)
    lead, (h, w) = f.shape[:-3], f.shape[-3:-1]
    flat = f.reshape(-1, h, w, 3)
    oh, ow = (size, size) if size else (h, w)
    c = 1 if grayscale else 3
    out = np.empty((flat.shape[0], oh, ow, c), dtype=np.uint8)
    for i, img in enumerate(flat):
        if (oh, ow) != (h, w):
            img = cv2.resize(img, (ow, oh), interpolation=cv2.INTER_AREA if oh < h else cv2.INTER_LINEAR)
        if grayscale:
            g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
            out[i, ..., 0] = cv2.equalizeHist(g) if equalize else g
        elif equalize:
            ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb)
            ycc[..., 0] = cv2.equalizeHist(np.ascontiguousarray(ycc[..., 0]))
            out[i] = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)
        else:
            out[i] = img
    x = (out.astype(np.float32) / 255.0 - FACE_MEAN) / FACE_STD
    return np.ascontiguousarray(np.moveaxis(x, -1, -3)).reshape(*lead, c, oh, ow)


def augment_faces(
    x: np.ndarray,
    *,
    rng: np.random.Generator,
    flip: bool = True,
    crop_scale: tuple[float, float] = (0.85, 1.0),
    brightness: float = 0.2,
    contrast: float = 0.2,
    rotation: float = 0.0,
    translate: float = 0.0,
    erasing: float = 0.0,
    occlusion: float = 0.0,
) -> np.ndarray:
    """One random flip / crop / rotation / shift / brightness-contrast jitter / erased patch / covered lower
    face, applied alike to every frame of a clip.

    Why the same for all frames: a transform that changes from frame to frame looks like facial motion to
    C3D and the RNNs. ``crop_scale`` is the side of the crop as a share of the face (it is zoomed back to
    full size), ``rotation`` the largest angle in degrees, ``translate`` the largest shift as a share of the
    side, ``erasing`` the probability of blanking one random rectangle (Zhong et al. 2020: the face model
    must not lean on one region), ``occlusion`` the probability of covering the lower 25-45% of the face with
    one flat grey level (a hand, scarf or mask over the mouth, which costs the video path about 24 points
    untrained: BENCHMARKS.md). ``brightness`` is in 0..1 pixel units, ``contrast`` a relative factor.
    Crop, rotation and shift are one affine warp, so the face is resampled once.
    """
    import cv2

    a = np.asarray(x, dtype=np.float32)
    if a.ndim < 3:
        raise MmferError(f"augment_faces: input has shape {a.shape}, expected (..., C, H, W)")
    lead, (c, h, w) = a.shape[:-3], a.shape[-3:]
    flat = a.reshape(-1, c, h, w)
    if flip and rng.random() < 0.5:
        flat = flat[..., ::-1]
    lo, hi = crop_scale
    s = float(rng.uniform(lo, hi)) if hi > lo else float(lo)
    angle = float(rng.uniform(-rotation, rotation)) if rotation > 0 else 0.0
    # the crop's centre may sit anywhere that keeps it inside the face, plus the extra shift
    dx = float(rng.uniform(-1, 1)) * ((1 - s) / 2 + translate) * w if (s < 1 or translate > 0) else 0.0
    dy = float(rng.uniform(-1, 1)) * ((1 - s) / 2 + translate) * h if (s < 1 or translate > 0) else 0.0
    if s != 1.0 or angle or dx or dy:
        centre = ((w - 1) / 2, (h - 1) / 2)
        m = cv2.getRotationMatrix2D(centre, angle, 1.0 / s)
        m[:, 2] -= np.array([dx, dy]) / s  # the crop centred on centre + (dx, dy) lands on the centre
        planes = np.ascontiguousarray(flat.reshape(-1, h, w))
        flat = np.stack([cv2.warpAffine(p, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
                         for p in planes]).reshape(-1, c, h, w)
    flat = np.array(flat, dtype=np.float32)
    if contrast > 0:
        k = float(rng.uniform(1 - contrast, 1 + contrast))
        mean = flat.mean()
        flat = (flat - mean) * k + mean
    if brightness > 0:
        flat = flat + float(rng.uniform(-brightness, brightness)) / FACE_STD
    if erasing > 0 and rng.random() < erasing:
        area = float(rng.uniform(0.02, 0.25)) * h * w
        ratio = float(np.exp(rng.uniform(np.log(0.3), np.log(3.3))))
        eh, ew = min(h, max(1, int(round((area * ratio) ** 0.5)))), min(w, max(1, int(round((area / ratio) ** 0.5))))
        y0, x0 = int(rng.integers(0, h - eh + 1)), int(rng.integers(0, w - ew + 1))
        flat[..., y0 : y0 + eh, x0 : x0 + ew] = rng.normal(size=(c, eh, ew)).astype(np.float32)
    if occlusion > 0 and rng.random() < occlusion:
        top = int(round(h * (1 - float(rng.uniform(0.25, 0.45)))))
        flat[..., top:, :] = float(rng.uniform(-1.5, 1.5))  # one grey level, in the model's standardised units
    return flat.reshape(*lead, c, h, w).astype(np.float32, copy=False)


def draw_degradation(rng: np.random.Generator) -> dict[str, Any]:
    """A random draw of what video does to a face (keyword arguments of ``video_degrade``), each kind with its
    own probability: blur 0.25 (sigma 0.4-1.6 px per 100 px of face), motion blur 0.15 (3-9 px), a lower
    resolution scaled back up 0.25 (35-70%), block compression 0.6 (JPEG quality 15-69), gamma 0.3 (0.6-1.6),
    sensor noise 0.2 (2-8 grey levels)."""
    return dict(
        blur=float(rng.uniform(0.4, 1.6)) if rng.random() < 0.25 else 0.0,
        motion=int(rng.integers(3, 10)) if rng.random() < 0.15 else 0,
        rescale=float(rng.uniform(0.35, 0.7)) if rng.random() < 0.25 else 1.0,
        jpeg=int(rng.integers(15, 70)) if rng.random() < 0.6 else 0,
        gamma=float(np.exp(rng.uniform(np.log(0.6), np.log(1.6)))) if rng.random() < 0.3 else 1.0,
        noise=float(rng.uniform(2, 8)) if rng.random() < 0.2 else 0.0,
    )


def video_degrade(image: np.ndarray, rng: np.random.Generator, *, blur: float = 0.0, motion: int = 0,
                  rescale: float = 1.0, jpeg: int = 0, gamma: float = 1.0, noise: float = 0.0) -> np.ndarray:
    """An RGB uint8 image (H, W, 3) as a video frame shows it: Gaussian blur (sigma px), motion blur along a random
    direction (length px), a lower resolution scaled back up (share), gamma, noise (grey levels) and JPEG block
    compression (quality; a stand-in for a video codec's), in that order; 0 / 1 switches one off."""
    import cv2

    frame = np.ascontiguousarray(image)
    h, w = frame.shape[:2]
    if blur:
        frame = cv2.GaussianBlur(frame, (0, 0), blur)
    if motion:
        k = np.zeros((motion, motion), np.float32)
        k[motion // 2] = 1.0
        rot = cv2.getRotationMatrix2D(((motion - 1) / 2, (motion - 1) / 2), float(rng.uniform(0, 180)), 1.0)
        k = cv2.warpAffine(k, rot, (motion, motion))
        frame = cv2.filter2D(frame, -1, k / max(float(k.sum()), 1e-6))
    if rescale < 1.0:
        small = cv2.resize(frame, (max(4, int(w * rescale)), max(4, int(h * rescale))), interpolation=cv2.INTER_AREA)
        frame = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if gamma != 1.0:
        lut = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma, 0, 255).astype(np.uint8)
        frame = lut[frame]
    if noise:
        frame = np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8)
    if jpeg:
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(frame), [cv2.IMWRITE_JPEG_QUALITY, int(jpeg)])
        if ok:
            frame = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).reshape(frame.shape)
    return np.ascontiguousarray(frame)


VIEWS = (1, 2, 10)


def crop_views(x: np.ndarray, *, views: int = 10, scale: float = 0.9) -> np.ndarray:
    """Test-time views of face tensors (..., C, H, W) -> (..., V, C, H, W), for averaging a model's outputs.

    ``views`` 1: as is; 2: plus the mirror image; 10: ten-crop (Krizhevsky et al. 2012), the four corners
    and the centre at ``scale`` of each side, resized back to H x W, and their mirrors. Crops are resized
    the way ``augment_faces`` resizes training crops (bilinear), so test views look like training ones.
    """
    import torch
    import torch.nn.functional as F

    if views not in VIEWS:
        raise MmferError(f"crop_views: views={views}; expected one of {', '.join(map(str, VIEWS))}")
    a = np.asarray(x, dtype=np.float32)
    if a.ndim < 3:
        raise MmferError(f"crop_views: input has shape {a.shape}, expected (..., C, H, W)")
    lead, (c, h, w) = a.shape[:-3], a.shape[-3:]
    flat = a.reshape(-1, c, h, w)
    if views == 1:
        out = flat[:, None]
    elif views == 2:
        out = np.stack([flat, flat[..., ::-1]], axis=1)
    else:
        ch, cw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
        starts = [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw), ((h - ch) // 2, (w - cw) // 2)]
        crops = [flat[..., y : y + ch, x0 : x0 + cw] for y, x0 in starts]
        t = torch.from_numpy(np.ascontiguousarray(np.concatenate(crops)))
        five = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False).numpy()
        five = five.reshape(5, -1, c, h, w).transpose(1, 0, 2, 3, 4)
        out = np.concatenate([five, five[..., ::-1]], axis=1)
    return np.ascontiguousarray(out, dtype=np.float32).reshape(*lead, out.shape[1], c, h, w)
