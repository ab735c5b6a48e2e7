"""2D CNN over log-mel spectrograms of variable length, pooled over valid time steps only.

Why: the audio branch sees clips of 1-5 s in padded batches; masking after every block (and pooling time
with ceil_mode) makes a padded clip score exactly as it would alone, so batch composition never changes
a clip's scores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmfer.errors import MmferError
from mmfer.models.common import check_input, check_mask, masked_max, masked_mean


class _Block(nn.Module):
    conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"))  # folded for inference (models.common.fold_batchnorm)

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # m: (B, 1, 1, T) float; re-zeroing padded steps makes them act like the convs' own zero padding.
        x = F.relu(self.bn1(self.conv1(x))) * m
        x = F.relu(self.bn2(self.conv2(x))) * m
        x = F.max_pool2d(x, 2, ceil_mode=True)
        m = F.max_pool2d(m, (1, 2), ceil_mode=True)
        return x, m


# Per-utterance normalisations of the log-mel input, over the utterance's valid time steps, before the
# per-band BatchNorm: a channel (microphone, room) and a speaker's vocal tract shift every band's level for the
# whole utterance, which the model should not learn as emotion.
UTTERANCE_NORMS = {
    "cmn": "each band's mean over the utterance subtracted (spectral tilt and channel left out)",
    "cmvn": "each band's mean subtracted and its spread divided out",
}


def normalise_utterance(x: torch.Tensor, m: torch.Tensor, norm: str) -> torch.Tensor:
    """(B, 1, n_mels, T) log-mel, (B, 1, 1, T) float mask -> per-band mean (and spread) over valid steps removed."""
    n = m.sum(-1, keepdim=True).clamp_min(1.0)
    mean = (x * m).sum(-1, keepdim=True) / n
    x = (x - mean) * m
    if norm == "cmvn":
        x = x / ((x * x).sum(-1, keepdim=True) / n).clamp_min(1e-6).sqrt()
    return x


class AudioCNN(nn.Module):
    """Input (B, 1, n_mels, T) log-mel, mask (B, T) valid steps."""

    input_kind = "logmel"

    def __init__(self, *, num_classes: int, n_mels: int, width: int, dropout: float,
                 utterance_norm: str = "none") -> None:
        super().__init__()
        self.n_mels = n_mels
        self.utterance_norm = utterance_norm
        w = width
        self.blocks = nn.ModuleList([_Block(1, w), _Block(w, 2 * w), _Block(2 * w, 4 * w), _Block(4 * w, 8 * w)])
        # Per-mel-band normalisation of the input: log-mel levels vary a lot between recordings.
        self.input_norm = nn.BatchNorm2d(n_mels)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(16 * w, num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_input(x, 4, where="audio_cnn", layout="(B, 1, n_mels, T)")
        if x.shape[1] != 1 or x.shape[2] != self.n_mels:
            raise MmferError(f"audio_cnn: input has shape {tuple(x.shape)}, expected (B, 1, {self.n_mels}, T)")
        mask = check_mask(mask, (x.shape[0], x.shape[3]), where="audio_cnn")
        if mask is None:
            mask = torch.ones(x.shape[0], x.shape[3], dtype=torch.bool, device=x.device)
        m = mask[:, None, None, :].to(x.dtype)
        if self.utterance_norm != "none":
            x = normalise_utterance(x, m, self.utterance_norm)
        x = self.input_norm((x * m).transpose(1, 2)).transpose(1, 2) * m
        for block in self.blocks:
            x, m = block(x, m)
        x = x.mean(2)  # over frequency: (B, C, T')
        valid = m[:, 0, 0, :] > 0  # (B, T')
        feats = x.transpose(1, 2)  # (B, T', C)
        pooled = torch.cat([masked_mean(feats, valid, dim=1), masked_max(feats, valid, dim=1)], dim=-1)
        return self.classifier(self.dropout(pooled))


def build_audio_cnn(*, num_classes: int = 7, n_mels: int = 64, width: int = 32, dropout: float = 0.3,
                    utterance_norm: str = "none") -> nn.Module:
    """Four conv blocks (width, 2w, 4w, 8w), masked mean+max over time, linear classifier.
    ``utterance_norm``: "none", or one of ``UTTERANCE_NORMS`` applied to the input first."""
    if width < 1 or n_mels < 1:
        raise MmferError(f"audio_cnn: width and n_mels must be >= 1, got {width}, {n_mels}")
    if utterance_norm != "none" and utterance_norm not in UTTERANCE_NORMS:
        raise MmferError(f"audio_cnn: unknown utterance_norm {utterance_norm!r} "
                         f"(known: none, {', '.join(UTTERANCE_NORMS)})")
    return AudioCNN(num_classes=num_classes, n_mels=n_mels, width=width, dropout=dropout,
                    utterance_norm=utterance_norm)
