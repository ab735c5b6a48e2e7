"""Per-utterance normalisations of the audio statistics, inside the audio_stats model (issue 19)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmfer.data.audio import utterance_feature_names, utterance_features
from mmfer.errors import MmferError
from mmfer.models.audio_stats import UTTERANCE_NORMS, build_audio_stats, utterance_norm


def _speech(seed: int, gain: float = 1.0, tilt: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    a = np.sin(2 * np.pi * (140 + 30 * np.sin(2 * np.pi * 2 * t)) * t) + 0.3 * rng.standard_normal(t.size)
    if tilt:  # a different microphone: first-order pre-emphasis
        a = np.append(a[0], a[1:] - tilt * a[:-1])
    return (gain * a / np.abs(a).max()).astype(np.float32)


def test_every_norm_builds_and_the_default_model_is_unchanged():
    names = utterance_feature_names()
    plain = build_audio_stats(hidden=8)
    assert plain.net[0].num_features == len(names)  # shipped checkpoints keep their shapes
    for piece in UTTERANCE_NORMS:
        m = build_audio_stats(hidden=8, utterance_norm=[piece]).eval()
        assert m(torch.randn(2, len(names))).shape == (2, 7)
    with pytest.raises(MmferError, match="unknown utterance_norm cepstral"):
        build_audio_stats(utterance_norm=["cepstral"])
    # one name, as an audio_cnn config writes it, is that piece (it was read letter by letter: "unknown c, m, n")
    assert build_audio_stats(utterance_norm="cmn").norms == ("cmn",)
    assert build_audio_stats(utterance_norm="none").norms == ()
    with pytest.raises(MmferError, match="unknown utterance_norm cmnn"):
        build_audio_stats(utterance_norm="cmnn")


def test_cmn_and_envtilt_take_out_a_channel_tilt():
    x = torch.from_numpy(np.stack([utterance_features(_speech(0), sample_rate=16000),
                                   utterance_features(_speech(0, tilt=0.9), sample_rate=16000)]))
    raw = (x[0] - x[1]).abs()
    idx = {n: i for i, n in enumerate(utterance_feature_names())}
    env = [idx[f"envelope{b}_mean"] for b in range(24)]
    shaped = utterance_norm(x, ["envtilt"])
    assert (shaped[0, env] - shaped[1, env]).abs().mean() < 0.5 * raw[env].mean()
    assert utterance_norm(x, ["cmn"]).shape[1] == x.shape[1] - 19
    assert utterance_norm(x, ["loudness"]).shape[1] == x.shape[1] - 1
