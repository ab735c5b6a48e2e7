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


class AudioStatsMLP(nn.Module):
    """Input (B, F) utterance features (``mmfer.data.audio.utterance_features``)."""

    input_kind = "audio_stats"

    def __init__(self, *, num_classes: int, num_features: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.num_features = num_features
        layers: list[nn.Module] = [nn.BatchNorm1d(num_features), nn.Dropout(min(dropout, 0.2))]
        width = num_features
        if hidden:
            layers += [nn.Linear(num_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                       nn.Dropout(dropout)]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_input(x, 2, where="audio_stats", layout="(B, features)")
        if x.shape[1] != self.num_features:
            raise MmferError(f"audio_stats: input has {x.shape[1]} features, expected {self.num_features}")
        return self.net(x)


def build_audio_stats(*, num_classes: int = 7, hidden: int = 64, dropout: float = 0.3) -> nn.Module:
    """BatchNorm-standardised utterance statistics -> (hidden layer ->) classes; ``hidden`` 0 = linear."""
    from mmfer.data.audio import utterance_feature_names

    if hidden < 0:
        raise MmferError(f"audio_stats: hidden must be >= 0, got {hidden}")
    return AudioStatsMLP(num_classes=num_classes, num_features=len(utterance_feature_names()), hidden=hidden,
                         dropout=dropout)
