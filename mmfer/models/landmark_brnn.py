"""Bidirectional RNN over pose-normalised landmark tracks (positions + motion, see data.features).

Why: landmark geometry is cheap, robust to illumination and identity texture, and complements the
appearance branches; a bidirectional RNN sees each frame in the context of the whole clip.
"""

from __future__ import annotations

import torch
from torch import nn

from mmfer.errors import MmferError
from mmfer.models.common import RNNS, check_input, check_mask, masked_max, masked_mean, run_rnn


class LandmarkBRNN(nn.Module):
    """Input (B, T, F) landmark features, mask (B, T); masked mean + max of the RNN outputs -> classifier."""

    input_kind = "landmarks"

    def __init__(self, *, num_classes: int, in_features: int, hidden: int, layers: int, rnn: str, dropout: float) -> None:
        super().__init__()
        self.in_features = in_features
        # Per-feature affine + projection: motion features are ~10x smaller than positions.
        self.proj = nn.Sequential(nn.Linear(in_features, hidden), nn.LayerNorm(hidden), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.rnn = RNNS[rnn](
            hidden, hidden, num_layers=layers, batch_first=True, bidirectional=True, dropout=dropout if layers > 1 else 0.0
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(4 * hidden, num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_input(x, 3, where="landmark_brnn", layout="(B, T, F)")
        if x.shape[-1] != self.in_features:
            raise MmferError(f"landmark_brnn: input has {x.shape[-1]} features per frame, model expects {self.in_features}")
        mask = check_mask(mask, tuple(x.shape[:2]), where="landmark_brnn")
        out, valid, _ = run_rnn(self.rnn, self.proj(x), mask)
        pooled = torch.cat([masked_mean(out, valid, dim=1), masked_max(out, valid, dim=1)], dim=-1)
        return self.classifier(self.dropout(pooled))


def build_landmark_brnn(
    *,
    num_classes: int = 7,
    in_features: int = 272,
    hidden: int = 128,
    layers: int = 2,
    rnn: str = "gru",
    dropout: float = 0.3,
) -> nn.Module:
    """Bidirectional GRU/LSTM over (B, T, in_features); 272 = 136 positions + 136 motions of 68 points."""
    if rnn not in RNNS:
        raise MmferError(f"landmark_brnn: unknown rnn {rnn!r}; choose one of {', '.join(RNNS)}")
    if hidden < 1 or layers < 1 or in_features < 1:
        raise MmferError(f"landmark_brnn: hidden, layers and in_features must be >= 1, got {hidden}, {layers}, {in_features}")
    return LandmarkBRNN(num_classes=num_classes, in_features=in_features, hidden=hidden, layers=layers, rnn=rnn, dropout=dropout)
