"""A small MLP over utterance statistics (pitch, energy, spectral shape, MFCCs): the second view of the voice.

Why: statistics over a whole utterance are the classic speaker- and corpus-robust speech emotion baseline
(Schuller et al. 2009); they fail differently from a CNN over the spectrogram, so the two fuse well. The
input is standardised by a BatchNorm layer, so the scaling learnt on the training corpus travels inside
the checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn

from mmfer.errors import MmferError
from mmfer.models.common import check_input


# Per-utterance normalisations of the statistics, applied inside the model (so the checkpoint carries them
# and training and predict share them; the statistics themselves, and any cache of them, stay as they are).
UTTERANCE_NORMS = {
    "cmn": "cepstral mean normalisation: MFCC 1-19 means (the channel's and the speaker's spectral tilt) left out",
    "cmvn": "cepstral mean and variance normalisation: MFCC means and spreads left out, delta spreads relative "
            "to their MFCC's spread",
    "noenv": "the log-mel envelope's mean shape left out (its spreads kept)",
    "envtilt": "the envelope's mean shape less its straight-line tilt over the bands (formant shape kept)",
    "loudness": "energy relative to the utterance's median loud-frame level (mean, 10th and 90th percentile "
                "less the median; the median left out)",
}


def utterance_norm(x: torch.Tensor, pieces: tuple[str, ...] | list[str]) -> torch.Tensor:
    """(B, F) statistics in ``utterance_feature_names`` order -> (B, F') after the named ``pieces``."""
    from mmfer.data.audio import N_ENVELOPE, N_MFCC, utterance_feature_names

    if not pieces:
        return x
    idx = {n: i for i, n in enumerate(utterance_feature_names())}
    unknown = [p for p in pieces if p not in UTTERANCE_NORMS]
    if unknown:
        raise MmferError(f"audio_stats: unknown utterance_norm {', '.join(unknown)} (known: {', '.join(UTTERANCE_NORMS)})")
    x = x.clone()
    keep = torch.ones(x.shape[1], dtype=torch.bool)
    if "cmn" in pieces:
        keep[[idx[f"mfcc{i}_mean"] for i in range(1, N_MFCC)]] = False
    if "cmvn" in pieces:
        means, stds = [idx[f"mfcc{i}_mean"] for i in range(N_MFCC)], [idx[f"mfcc{i}_std"] for i in range(N_MFCC)]
        deltas = [idx[f"dmfcc{i}_std"] for i in range(N_MFCC)]
        x[:, deltas] = x[:, deltas] / x[:, stds].clamp_min(1e-3)
        keep[means + stds] = False
    env = [idx[f"envelope{b}_mean"] for b in range(N_ENVELOPE)]
    if "noenv" in pieces:
        keep[env] = False
    elif "envtilt" in pieces:
        t = torch.linspace(-1, 1, N_ENVELOPE, dtype=x.dtype, device=x.device)
        e = x[:, env]
        slope = (e * t).sum(1, keepdim=True) / (t * t).sum()
        x[:, env] = e - e.mean(1, keepdim=True) - slope * t
    if "loudness" in pieces:
        med = x[:, idx["energy_p50"]].clone()
        for s in ("mean", "p10", "p90"):
            x[:, idx[f"energy_{s}"]] -= med
        keep[idx["energy_p50"]] = False
    return x[:, keep.to(x.device)]


class AudioStatsMLP(nn.Module):
    """Input (B, F) utterance features (``mmfer.data.audio.utterance_features``)."""

    input_kind = "audio_stats"

    def __init__(self, *, num_classes: int, num_features: int, hidden: int, dropout: float,
                 norms: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.num_features = num_features
        self.norms = tuple(norms)
        width = num_features
        if self.norms:
            with torch.device("cpu"):  # a real probe also where a config check builds the model on the meta device
                width = int(utterance_norm(torch.zeros(1, num_features), self.norms).shape[1])
        layers: list[nn.Module] = [nn.BatchNorm1d(width), nn.Dropout(min(dropout, 0.2))]
        inputs, width = width, width
        if hidden:
            layers += [nn.Linear(inputs, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                       nn.Dropout(dropout)]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_input(x, 2, where="audio_stats", layout="(B, features)")
        if x.shape[1] != self.num_features:
            raise MmferError(f"audio_stats: input has {x.shape[1]} features, expected {self.num_features}")
        return self.net(utterance_norm(x, self.norms))


def build_audio_stats(*, num_classes: int = 7, hidden: int = 64, dropout: float = 0.3,
                      utterance_norm: str | list[str] | tuple[str, ...] = ()) -> nn.Module:
    """BatchNorm-standardised utterance statistics -> (hidden layer ->) classes; ``hidden`` 0 = linear.
    ``utterance_norm`` names per-utterance normalisations (``UTTERANCE_NORMS``) applied first: a list, or one name
    as audio_cnn takes it ("none" for none)."""
    from mmfer.data.audio import utterance_feature_names

    if isinstance(utterance_norm, str):  # `utterance_norm: cmn`, as in an audio_cnn config, not the letters c, m, n
        utterance_norm = () if utterance_norm == "none" else (utterance_norm,)

    if hidden < 0:
        raise MmferError(f"audio_stats: hidden must be >= 0, got {hidden}")
    unknown = [p for p in utterance_norm if p not in UTTERANCE_NORMS]
    if unknown:
        raise MmferError(f"audio_stats: unknown utterance_norm {', '.join(map(str, unknown))} "
                         f"(known: {', '.join(UTTERANCE_NORMS)})")
    return AudioStatsMLP(num_classes=num_classes, num_features=len(utterance_feature_names()), hidden=hidden,
                         dropout=dropout, norms=tuple(utterance_norm))
