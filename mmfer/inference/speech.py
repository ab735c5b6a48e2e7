"""Whether a sound holds speech, before a voice model reads it.

Why: the voice models learnt from speech only, and read any other sound as an emotion: a fan, a mains hum or a
microphone's noise floor at -86 dBFS came out as Fear (0.73) and pulled a smiling face's video towards Fear
(found by a helper). A sound in which no speech is heard is treated as silence: the faces alone score that
part of a video, and a sound file with no speech gets no prediction.

The check is Silero VAD (Silero Team 2021; MIT licence, its weights inside the ``silero-vad`` wheel, read
from there: nothing is downloaded), which gives a speech probability every 32 ms (16 and 8 kHz; other rates are
resampled to 16 kHz first), on the sound with its mean (a DC offset) taken out. A sound holds speech when any
step reaches ``SPEECH_EVIDENCE``: a
lenient bar, as a voice wrongly left out costs more than noise read, and loud emotional speech is where the
detector is least sure (one RAVDESS actor's shouted and fearful lines peaked at 0.21-0.45, under Silero's own
0.5). Measured with tools/speech_check.py (BENCHMARKS.md): all 8,541 utterances of RAVDESS, nEMO, SAVEE and TESS
reach it (lowest 0.21); of 21 made sounds without speech (noise of three colours at five levels, mains hum, a
tone, clicks) only white noise at std 0.002 does (0.158). The detector hears loudness: very quiet speech (a peak
near -54 dBFS, 0.002) can fall under the bar; brought to a common level first, mains hum passed it instead
(0.45-0.69), so the level is left as recorded and the row says when a sound without speech was very quiet.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache

import numpy as np

from mmfer.errors import MmferError

SPEECH_EVIDENCE = 0.15  # the highest step probability of a sound that holds speech
_RATES = {16000: 512, 8000: 256}  # the rates the model reads, and its step (samples) at each
QUIET_PEAK = 0.01  # a sound without speech this quiet (-40 dBFS) is said to be very quiet: speech may be missed
# one model, whose recurrent state is per call: one call at a time (predict's sound thread and a caller's own
# threads may ask at once); a forked child starts with a free lock
_CALLS = threading.Lock()


def _renew_lock() -> None:
    global _CALLS
    _CALLS = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX only; Windows has no fork to renew state after
    os.register_at_fork(after_in_child=_renew_lock)


@lru_cache(maxsize=1)
def _model():
    import warnings

    from mmfer.engine.device import torch_threads_kept

    try:  # importing silero_vad sets torch to one thread for the whole process: the counts are kept
        with torch_threads_kept(), warnings.catch_warnings():  # (and its deprecated importlib and torch.jit calls)
            warnings.simplefilter("ignore", DeprecationWarning)
            from silero_vad import load_silero_vad

            return load_silero_vad()
    except ImportError as e:
        raise MmferError("the speech check needs the silero-vad package (pip install silero-vad; its weights come "
                         "inside it), or turn the check off (--no-speech-check, Predictor(speech_check=False))") from e


def speech_probability(audio: np.ndarray, sample_rate: int, *, from_sample: int = 0) -> float:
    """The highest speech probability over the 32-ms steps of mono ``audio`` (float, -1..1) that start at or after
    ``from_sample`` (the samples before it only warm the detector up: a cold start misses speech in short
    pieces); 0 for less than one step."""
    import torch

    a = np.asarray(audio, dtype=np.float64)
    if a.ndim != 1:
        raise MmferError(f"speech_probability: audio has shape {a.shape}, expected mono (N,)")
    a = np.nan_to_num(a)
    a = a - a.mean() if a.size else a
    peak = float(np.abs(a).max()) if a.size else 0.0
    x = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    rate = sample_rate
    if rate not in _RATES:
        import torchaudio.functional as AF

        x, rate, from_sample = AF.resample(x, rate, 16000), 16000, int(from_sample * 16000 / rate)
    step = _RATES[rate]
    if x.numel() - from_sample < step or peak == 0:
        return 0.0
    model = _model()
    with _CALLS, torch.inference_mode():
        probs = model.audio_forward(x, sr=rate)[0]  # resets the model's state first
    return float(probs[from_sample // step:].max())


def holds_speech(audio: np.ndarray, sample_rate: int, *, from_sample: int = 0) -> bool:
    """Whether speech is heard in ``audio`` (from ``from_sample`` on): some step reaches ``SPEECH_EVIDENCE``."""
    return speech_probability(audio, sample_rate, from_sample=from_sample) >= SPEECH_EVIDENCE
