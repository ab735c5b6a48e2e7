"""Speech before the audio models: silence trimming, channel/level augmentation, utterance statistics.

Why a module of its own: an emotion model trained on one corpus hears its microphone, room and level as
much as the voice. Trimming takes the silence (whose length says nothing about emotion) out of both
training and prediction; the augmentations make recordings differ in speed, noise, room, frequency
response and codec, so that the model learns what stays the same: the voice. The utterance statistics
(pitch, energy, spectral shape, MFCCs) are the classic cross-corpus baseline (Schuller et al. 2009),
a second view of the voice for the ``audio_stats`` branch.
"""

from __future__ import annotations

import functools
import io
import logging
from typing import TYPE_CHECKING

import numpy as np

from mmfer.errors import MmferError

if TYPE_CHECKING:
    from mmfer.data.config import AugmentConfig

log = logging.getLogger(__name__)

# Shortest span trimming may leave: a window that is all pause is kept whole rather than emptied.
MIN_TRIMMED_SECONDS = 0.25
# Resampling (or a lossy codec's decoding) of a recording that reaches full scale overshoots it: a full-scale
# 16-bit square wave at 44.1 kHz made 16 kHz peaks of 1.19. Such samples are clipped without a warning, which is
# kept for levels that say the file itself is off (a float file scaled wrong).
CLIP_WARN_ABOVE = 1.5


def clip_note(count: int, peak: float) -> str:
    """The warning for ``count`` samples clipped to [-1, 1], the largest ``peak`` in magnitude: "" within the
    overshoot resampling gives (``CLIP_WARN_ABOVE``)."""
    if not count or peak <= CLIP_WARN_ABOVE:
        return ""
    return f"{count} audio sample(s) beyond full scale (up to {peak:.3g}) clipped"


def sanitise_audio(audio: np.ndarray) -> tuple[np.ndarray, str]:
    """Audio as finite float32 in [-1, 1]: non-finite samples become 0 and out-of-range ones are clipped.

    Returns the audio and a warning ("" when nothing was changed, or only resampling's overshoot was clipped):
    one inf sample must not turn every feature, and then every score, into NaN.
    """
    a = np.asarray(audio, dtype=np.float32)
    bad = ~np.isfinite(a)
    notes = []
    if bad.any():
        a = np.where(bad, np.float32(0), a)
        notes.append(f"{int(bad.sum())} non-finite audio sample(s) set to 0")
    over = np.abs(a) > 1.0
    if over.any():
        notes.append(clip_note(int(over.sum()), float(np.abs(a).max())))
        a = np.clip(a, -1.0, 1.0)
    return a, "; ".join(n for n in notes if n)


def remove_dc(audio: np.ndarray) -> np.ndarray:
    """``audio`` with its mean taken out: a sound card's DC offset is no voice (0.05 of it moved an utterance from
    Surprise to Disgust). Here, in this file, so that cached statistics (keyed by this file's code) are renewed."""
    return audio - np.float32(audio.mean(dtype=np.float64)) if audio.size else audio


def trim_silence(audio: np.ndarray, *, sample_rate: int, top_db: float = 35.0, frame_ms: float = 25.0) -> np.ndarray:
    """The span from the first to the last frame within ``top_db`` of the loudest frame (energy-based).

    Leading and trailing pauses go; pauses inside the utterance stay (they are part of its prosody). A
    clip that would keep less than ``MIN_TRIMMED_SECONDS`` is returned whole.
    """
    a = np.asarray(audio, dtype=np.float32)
    frame = max(1, int(round(sample_rate * frame_ms / 1000)))
    n = len(a) // frame
    if n < 2:
        return a
    rms = np.sqrt(np.mean(a[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1) + 1e-12)
    db = 20 * np.log10(rms)
    loud = np.flatnonzero(db >= db.max() - top_db)
    start, end = int(loud[0]) * frame, min(len(a), (int(loud[-1]) + 1) * frame)
    if end - start < MIN_TRIMMED_SECONDS * sample_rate:
        return a
    return a[start:end]


# ---------------------------------------------------------------- augmentation
def change_speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (tempo and pitch together, as in Ko et al. 2015's speed perturbation)."""
    n = max(1, int(round(len(audio) / factor)))
    return np.interp(np.arange(n) * factor, np.arange(len(audio)), audio).astype(np.float32)


def _fast_len(n: int) -> int:
    from scipy.fft import next_fast_len

    return next_fast_len(n, real=True)


def coloured_noise(n: int, *, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Noise with power falling as 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    m = _fast_len(n)
    spec = np.fft.rfft(rng.standard_normal(m))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    noise = np.fft.irfft(spec / f ** (exponent / 2), m)[:n]
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-12)).astype(np.float32)


def add_noise(audio: np.ndarray, *, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    """Coloured noise (white to brown, at random) at ``snr_db`` below the speech's RMS."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) or 1e-4
    noise = coloured_noise(len(audio), rng=rng, exponent=float(rng.uniform(0.0, 2.0)))
    return (audio + noise * rms / 10 ** (snr_db / 20)).astype(np.float32)


def add_reverb(audio: np.ndarray, *, rng: np.random.Generator, sample_rate: int, rt60: float) -> np.ndarray:
    """A room: the direct sound plus exponentially decaying diffuse echoes lasting ``rt60`` seconds."""
    from scipy.signal import fftconvolve

    n = max(2, int(rt60 * sample_rate))
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    ir = tail * float(rng.uniform(0.1, 0.5)) / (np.sqrt(np.sum(tail**2)) + 1e-12)
    ir[0] = 1.0
    wet = fftconvolve(audio, ir)[: len(audio)]
    peak = float(np.max(np.abs(wet))) or 1.0
    return (wet * min(1.0, float(np.max(np.abs(audio))) / peak if peak > 0 else 1.0)).astype(np.float32)


def random_eq(audio: np.ndarray, *, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Another microphone or line: a smooth random frequency response (+-6 dB), half the time band-limited
    like a telephone (high-pass 150-400 Hz, low-pass 3.4-5 kHz)."""
    m = _fast_len(len(audio))
    spec = np.fft.rfft(audio, m)
    freqs = np.fft.rfftfreq(m, 1.0 / sample_rate)
    knots = np.geomspace(50, sample_rate / 2, 8)
    gain_db = np.interp(np.log(np.maximum(freqs, 50)), np.log(knots), rng.uniform(-6, 6, len(knots)))
    gain = 10 ** (gain_db / 20)
    if rng.random() < 0.5:
        lo, hi = float(rng.uniform(150, 400)), float(rng.uniform(3400, 5000))
        gain = gain / np.sqrt(1 + (lo / np.maximum(freqs, 1e-3)) ** 8) / np.sqrt(1 + (freqs / hi) ** 8)
    return np.fft.irfft(spec * gain, m)[: len(audio)].astype(np.float32)


def codec_round_trip(audio: np.ndarray, *, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Encode to mp3 or AAC at a random low bit rate and decode again, in memory (PyAV)."""
    import av

    codec, fmt = ("libmp3lame", "mp3") if rng.random() < 0.5 else ("aac", "adts")
    bit_rate = int(rng.choice([24_000, 32_000, 48_000, 64_000]))
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=sample_rate, layout="mono")
        stream.bit_rate = bit_rate
        frame = av.AudioFrame.from_ndarray(np.clip(audio, -1, 1)[None].astype(np.float32), format="flt",
                                           layout="mono")
        frame.sample_rate = sample_rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    chunks = []
    with av.open(buf, "r", format=fmt) as inp:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        for frame in inp.decode(audio=0):
            for f in resampler.resample(frame):
                chunks.append(f.to_ndarray().reshape(-1))
    decoded = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    out_audio = np.zeros(len(audio), np.float32)
    # encoders add a priming delay: align on the cross-correlation peak within 100 ms
    lag = _best_lag(audio, decoded, max_lag=int(0.1 * sample_rate))
    piece = decoded[lag : lag + len(audio)]
    out_audio[: len(piece)] = piece
    return out_audio


def _best_lag(ref: np.ndarray, x: np.ndarray, *, max_lag: int) -> int:
    n = min(len(ref), len(x) - max_lag, 16000)
    if n <= 0:
        return 0
    scores = [float(np.dot(ref[:n], x[lag : lag + n])) for lag in range(0, max_lag + 1, 8)]
    coarse = int(np.argmax(scores)) * 8
    fine = range(max(0, coarse - 8), min(max_lag, coarse + 8) + 1)
    return max(fine, key=lambda lag: float(np.dot(ref[:n], x[lag : lag + n])))


def augment_waveform(audio: np.ndarray, *, rng: np.random.Generator, sample_rate: int, augment: AugmentConfig) -> np.ndarray:
    """The training-time waveform augmentations that ``augment`` (an AugmentConfig) switches on, in the
    order a recording chain applies them: speaker (speed), room (reverb), microphone (EQ), noise, codec.
    The level is then set to a random gain, which the per-clip standardisation of the log-mel undoes."""
    a = np.asarray(audio, dtype=np.float32)
    if a.size == 0:
        return a
    lo, hi = augment.speed
    if hi > lo and rng.random() < 0.5:
        a = change_speed(a, float(rng.uniform(lo, hi)))
    if augment.reverb > 0 and rng.random() < augment.reverb:
        a = add_reverb(a, rng=rng, sample_rate=sample_rate, rt60=float(rng.uniform(0.15, 0.8)))
    if augment.eq > 0 and rng.random() < augment.eq:
        a = random_eq(a, rng=rng, sample_rate=sample_rate)
    if augment.noise > 0 and rng.random() < augment.noise:
        lo_snr, hi_snr = augment.noise_snr
        a = add_noise(a, rng=rng, snr_db=float(rng.uniform(lo_snr, hi_snr)))
    if augment.codec > 0 and rng.random() < augment.codec:
        try:
            a = codec_round_trip(a, rng=rng, sample_rate=sample_rate)
        except Exception as e:  # noqa: BLE001 - an encoder missing from this PyAV build only skips the step
            log.debug("codec round trip skipped: %s", e)
    peak = float(np.max(np.abs(a))) if a.size else 0.0
    if peak > 0:
        a = a * (float(rng.uniform(0.1, 0.95)) / peak)
    return a.astype(np.float32, copy=False)


# ---------------------------------------------------------------- utterance statistics
N_MFCC = 20
N_ENVELOPE = 24  # log-mel bands of the spectral-envelope statistics
_SPECTRAL = ("centroid", "bandwidth", "rolloff", "flatness", "zcr")
_CONTRAST_BANDS = 7
_FRAME = 512  # 32 ms at 16 kHz
_HOP = 160  # 10 ms at 16 kHz


def _stats(x: np.ndarray) -> list[float]:
    """mean, std, 10th/50th/90th percentile and linear slope over time of a 1-D series (0s when empty)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return [0.0] * 6
    p10, p50, p90 = np.percentile(x, [10, 50, 90])
    slope = float(np.polyfit(np.linspace(0, 1, x.size), x, 1)[0]) if x.size > 1 else 0.0
    return [float(x.mean()), float(x.std()), float(p10), float(p50), float(p90), slope]


def utterance_feature_names() -> list[str]:
    """Names of :func:`utterance_features`' values, in order."""
    stat = ("mean", "std", "p10", "p50", "p90", "slope")
    names = ["f0_std", "f0_range", "f0_slope", "voiced_ratio"]
    names += [f"energy_{s}" for s in stat]
    names += [f"{k}_{s}" for k in _SPECTRAL for s in ("mean", "std")]
    names += [f"contrast{b}_{s}" for b in range(_CONTRAST_BANDS) for s in ("mean", "std")]
    names += [f"mfcc{i}_{s}" for i in range(N_MFCC) for s in ("mean", "std")]
    names += [f"dmfcc{i}_std" for i in range(N_MFCC)]
    names += [f"envelope{b}_mean" for b in range(N_ENVELOPE)] + [f"envelope{b}_std" for b in range(N_ENVELOPE)]
    return names


def _frames(a: np.ndarray, frame: int, hop: int) -> np.ndarray:
    """(n_frames, frame) views of ``a`` (padded at the end to a whole frame)."""
    n = 1 + max(0, int(np.ceil((len(a) - frame) / hop)))
    a = np.pad(a, (0, max(0, (n - 1) * hop + frame - len(a))))
    return np.lib.stride_tricks.sliding_window_view(a, frame)[::hop][:n]


def _yin(a: np.ndarray, *, sample_rate: int, fmin: float, fmax: float, frame: int, hop: int,
         threshold: float = 0.3) -> np.ndarray:
    """YIN pitch per frame (de Cheveigne & Kawahara 2002), Hz; NaN where no period is clear."""
    x = _frames(a.astype(np.float64), frame, hop)
    w = frame // 2
    lo, hi = int(sample_rate / fmax), min(int(sample_rate / fmin), w - 1)
    nfft = 1 << (2 * frame - 1).bit_length()
    spec = np.fft.rfft(x, nfft)
    acf = np.fft.irfft(spec * np.conj(np.fft.rfft(x[:, :w], nfft)), nfft)[:, : w + 1]  # sum x[j] x[j+tau], j < w
    energy = np.cumsum(np.pad(x**2, ((0, 0), (1, 0))), axis=1)
    e0 = energy[:, w][:, None]
    taus = np.arange(w + 1)
    e_tau = energy[:, taus + w] - energy[:, taus]
    diff = e0 + e_tau - 2 * acf
    diff[:, 0] = 0
    cum = np.cumsum(diff[:, 1:], axis=1) / np.arange(1, w + 1)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] / np.maximum(cum, 1e-12)
    f0 = np.full(len(x), np.nan)
    band = cmnd[:, lo : hi + 1]
    for i, row in enumerate(band):
        below = np.flatnonzero(row < threshold)
        if below.size == 0:
            continue
        j = below[0]
        while j + 1 < len(row) and row[j + 1] < row[j]:  # walk down to the dip's bottom
            j += 1
        tau = j + lo
        if 1 <= tau < w:  # parabolic interpolation around the dip
            y0, y1, y2 = cmnd[i, tau - 1], cmnd[i, tau], cmnd[i, tau + 1]
            den = y0 - 2 * y1 + y2
            tau = tau + (0.5 * (y0 - y2) / den if abs(den) > 1e-12 else 0.0)
        f0[i] = sample_rate / tau
    return f0


@functools.lru_cache(maxsize=4)
def _mel_filters(n_freqs: int, sample_rate: int, n_mels: int) -> np.ndarray:
    """Triangular filters on the HTK mel scale, (n_freqs, n_mels), as torchaudio's melscale_fbanks
    (computed here so that a first prediction does not pay for importing torchaudio)."""
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10 ** (m / 2595.0) - 1.0)  # noqa: E731
    freqs = np.linspace(0, sample_rate / 2, n_freqs)
    points = hz(np.linspace(mel(0.0), mel(sample_rate / 2), n_mels + 2))
    down = (freqs[:, None] - points[None, :-2]) / (points[1:-1] - points[:-2])[None, :]
    up = (points[None, 2:] - freqs[:, None]) / (points[2:] - points[1:-1])[None, :]
    return np.maximum(0.0, np.minimum(down, up))


def utterance_features(audio: np.ndarray, *, sample_rate: int) -> np.ndarray:
    """A fixed-length vector of prosodic and spectral statistics over one utterance (float32).

    Pitch movement (YIN, 60-500 Hz, on frames loud enough to be voiced; spread, range and slope in
    semitones, not the speaker's pitch level), energy (dB), spectral centroid, bandwidth, roll-off,
    flatness, zero-crossing rate, spectral contrast, the mean and spread of 20 MFCCs and their deltas, and
    a 24-band log-mel envelope (mean shape and spread). Levels are relative (dB to the utterance's peak,
    bands to their frame's mean), so the vector does not depend on the recording gain. NumPy only (no JIT compile on first use).
    """
    from scipy.fft import dct

    a = np.asarray(audio, dtype=np.float64)
    if a.ndim != 1:
        raise MmferError(f"utterance_features: audio has shape {a.shape}, expected mono (N,)")
    a = np.nan_to_num(a)
    if len(a) < _FRAME * 2:
        a = np.pad(a, (0, _FRAME * 2 - len(a)))
    peak = float(np.max(np.abs(a)))
    if peak > 0:
        a = a / peak
    frames = _frames(a, _FRAME, _HOP)
    mag = np.abs(np.fft.rfft(frames * np.hanning(_FRAME + 1)[:-1], axis=1))  # (T, F)
    power = mag**2
    freqs = np.fft.rfftfreq(_FRAME, 1.0 / sample_rate)
    energy_db = 10 * np.log10(power.mean(axis=1) + 1e-12)
    loud = energy_db > energy_db.max() - 30
    f0 = _yin(a, sample_rate=sample_rate, fmin=60, fmax=500, frame=1024, hop=_HOP)
    n = min(len(f0), len(loud))
    voiced = loud[:n] & np.isfinite(f0[:n])
    with np.errstate(divide="ignore", invalid="ignore"):  # a rare wild dip interpolation: NaN, dropped by _stats
        semitones = 12 * np.log2(f0[:n][voiced] / 100.0)
    # pitch movement only: its level (mean, percentiles) is mostly who speaks (a man, a woman, a child), and
    # a model that learnt the 15 RAVDESS actors' levels named nearly every CREMA-D track Surprise
    _, f0_std, f0_p10, _, f0_p90, f0_slope = _stats(semitones)
    feats: list[float] = [f0_std, f0_p90 - f0_p10, f0_slope, float(voiced.mean()) if n else 0.0]
    feats += _stats(energy_db[loud])
    total = mag.sum(axis=1) + 1e-12
    centroid = (mag * freqs).sum(axis=1) / total
    spectral = {
        "centroid": centroid / 1000.0,
        "bandwidth": np.sqrt((mag * (freqs - centroid[:, None]) ** 2).sum(axis=1) / total) / 1000.0,
        "rolloff": freqs[np.minimum(np.argmax(np.cumsum(mag, axis=1) >= 0.85 * total[:, None], axis=1),
                                    len(freqs) - 1)] / 1000.0,
        "flatness": np.exp(np.mean(np.log(power + 1e-10), axis=1)) / (power.mean(axis=1) + 1e-10),
        "zcr": np.mean(np.abs(np.diff(np.signbit(frames), axis=1)), axis=1),
    }
    for k in _SPECTRAL:
        v = spectral[k][loud]
        feats += [float(v.mean()) if v.size else 0.0, float(v.std()) if v.size else 0.0]
    # spectral contrast: peak minus valley (dB) in octave bands from 200 Hz up, and the band below
    edges = [0.0] + [200.0 * 2**i for i in range(_CONTRAST_BANDS - 1)] + [sample_rate / 2 + 1]
    db = 10 * np.log10(power[loud] + 1e-10) if loud.any() else 10 * np.log10(power + 1e-10)
    for b in range(_CONTRAST_BANDS):
        cols = (freqs >= edges[b]) & (freqs < edges[b + 1])
        band = np.sort(db[:, cols], axis=1) if cols.any() else np.zeros((len(db), 1))
        k = max(1, int(round(0.2 * band.shape[1])))
        contrast = band[:, -k:].mean(axis=1) - band[:, :k].mean(axis=1)
        feats += [float(contrast.mean()), float(contrast.std())]
    mel = power @ _mel_filters(len(freqs), sample_rate, 40)
    mfcc = dct(10 * np.log10(mel + 1e-10), type=2, norm="ortho", axis=1)[:, :N_MFCC][loud].T
    if mfcc.shape[1] == 0:
        mfcc = np.zeros((N_MFCC, 1))
    for row in mfcc:
        feats += [float(row.mean()), float(row.std())]
    delta = np.diff(mfcc, axis=1) if mfcc.shape[1] > 1 else np.zeros((N_MFCC, 1))
    feats += [float(row.std()) for row in delta]
    # the spectral envelope band by band: each loud frame's log-mel bands relative to that frame's mean level
    # (so gain-free), averaged; and each band's spread. In the speaker-disjoint cross-validation this lifted
    # UAR from 0.519 to 0.550 (voice-quality and rhythm statistics added nothing beside it)
    if loud.any():
        env = 10 * np.log10(power[loud] @ _mel_filters(len(freqs), sample_rate, N_ENVELOPE) + 1e-10)
    else:
        env = np.zeros((1, N_ENVELOPE))
    feats += [float(v) for v in (env - env.mean(axis=1, keepdims=True)).mean(axis=0)]
    feats += [float(v) for v in env.std(axis=0)]
    out = np.asarray(feats, dtype=np.float32)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
