"""Whether a sound holds speech, before a voice model reads it.

Why: the voice models learnt from speech only, and read any other sound as an emotion: a fan, a mains hum or a
microphone's noise floor at -86 dBFS came out as Fear (0.73) and pulled a smiling face's video towards Fear
(found by a helper). A sound in which no speech is heard is treated as silence: the faces alone score that
part of a video, and a sound file with no speech gets no prediction.

The check is Silero VAD (Silero Team 2021; MIT licence, its weights inside the ``silero-vad`` wheel, read
from there: nothing is downloaded), which gives a speech probability every 32 ms (16 kHz; 16 ms at 8 kHz;
other rates are resampled to 16 kHz first). A sound holds speech when any step reaches ``SPEECH_EVIDENCE``: a
lenient bar, as a voice wrongly left out costs more than noise read, and loud emotional speech is where the
detector is least sure (one RAVDESS actor's shouted and fearful lines peaked at 0.21-0.45, under Silero's own
0.5). Measured with tools/speech_check.py (BENCHMARKS.md): all 8,541 utterances of RAVDESS, nEMO, SAVEE and TESS
reach it (lowest 0.21); of 21 made sounds without speech (noise of three colours at five levels, mains hum, a
tone, clicks) only white noise at std 0.002 does (0.158).
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from mmfer.errors import MmferError

SPEECH_EVIDENCE = 0.15  # the highest step probability of a sound that holds speech
_RATES = (16000, 8000)  # the rates the model reads
# one model, whose recurrent state is per call: one call at a time (predict's sound thread and a caller's own
# threads may ask at once)
_CALLS = threading.Lock()


@lru_cache(maxsize=1)
def _model():
    try:
        from silero_vad import load_silero_vad
    except ImportError as e:
        raise MmferError("the speech check needs the silero-vad package (pip install silero-vad; its weights come "
                         "inside it), or turn the check off (--no-speech-check, Predictor(speech_check=False))") from e
    import warnings

    with warnings.catch_warnings():  # the package's own use of deprecated importlib and torch.jit calls
        warnings.simplefilter("ignore", DeprecationWarning)
        return load_silero_vad()


def speech_probability(audio: np.ndarray, sample_rate: int) -> float:
    """The highest speech probability over the 32-ms steps of mono ``audio`` (float, -1..1); 0 for no samples."""
    import torch

    a = np.asarray(audio, dtype=np.float32)
    if a.ndim != 1:
        raise MmferError(f"speech_probability: audio has shape {a.shape}, expected mono (N,)")
    if a.size == 0:
        return 0.0
    x = torch.from_numpy(np.ascontiguousarray(np.nan_to_num(a)))
    rate = sample_rate
    if rate not in _RATES:
        import torchaudio.functional as AF

        x, rate = AF.resample(x, rate, 16000), 16000
    model = _model()
    with _CALLS, torch.inference_mode():
        probs = model.audio_forward(x, sr=rate)  # resets the model's state first
    return float(probs.max())


def holds_speech(audio: np.ndarray, sample_rate: int) -> bool:
    """Whether speech is heard anywhere in ``audio``: some step reaches ``SPEECH_EVIDENCE``."""
    return speech_probability(audio, sample_rate) >= SPEECH_EVIDENCE
