"""CNN-RNN over a clip's face frames: a 2D face encoder per frame, then an LSTM/GRU over time.

Why: face expressions unfold over a second or more, longer than a C3D window; encoding each frame with a
face CNN (pre-trainable on still images) and letting an RNN integrate them is the EmotiW CNN-RNN branch.
``aggregate="mean"`` is the plain frame-averaging baseline the RNN has to beat.
"""

from __future__ import annotations

import torch
from torch import nn

from mmfer.errors import MmferError
from mmfer.models.common import RNNS, check_input, check_mask, masked_mean, run_rnn
from mmfer.models.face_encoders import DEFAULT_ARCH, build_face_encoder


class CNNLSTM(nn.Module):
    """Input (B, T, C, H, W), mask (B, T): masked frames skip the encoder and the RNN entirely."""

    input_kind = "face_sequence"

    def __init__(
        self,
        encoder: nn.Module,
        *,
        num_classes: int,
        rnn: str,
        hidden: int,
        layers: int,
        bidirectional: bool,
        aggregate: str,
        pool: str,
        dropout: float,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.aggregate = aggregate
        self.pool = pool
        # the class layer scores each frame and the clip's scores are their mean (aggregate mean): what reads
        # the class layer's input (mmfer.engine.adversary) gets frames, not clips
        self.scores_per_frame = aggregate != "rnn"
        self.dropout = nn.Dropout(dropout)
        f = encoder.out_features
        if aggregate == "rnn":
            self.rnn = RNNS[rnn](
                f, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional,
                dropout=dropout if layers > 1 else 0.0,
            )
            self.classifier = nn.Linear(hidden * (2 if bidirectional else 1), num_classes)
        else:
            self.rnn = None
            self.classifier = nn.Linear(f, num_classes)

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-frame features (B, T, F); only valid frames are encoded (no BN statistics from blank crops)."""
        b, t = x.shape[:2]
        flat = x.reshape(b * t, *x.shape[2:])
        valid = mask.reshape(-1)
        if not valid.any():
            return flat.new_zeros(b, t, self.encoder.out_features)
        enc = self.encoder(flat[valid])  # float16 under autocast: the zeros follow its dtype
        feats = enc.new_zeros(b * t, enc.shape[-1]).index_put((valid.nonzero(as_tuple=True)[0],), enc)
        return feats.reshape(b, t, -1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_input(x, 5, where="cnn_lstm", layout="(B, T, C, H, W)", channels=getattr(self.encoder, "in_channels", None),
                    channel_axis=2)
        mask = check_mask(mask, tuple(x.shape[:2]), where="cnn_lstm")
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        feats = self.dropout(self.encode(x, mask))
        if self.rnn is None:
            # Mean of per-frame scores over valid frames; zeros (uniform) for a clip without faces.
            return masked_mean(self.classifier(feats), mask, dim=1)
        out, valid, last = run_rnn(self.rnn, feats, mask)
        pooled = last if self.pool == "last" else masked_mean(out, valid, dim=1)
        return self.classifier(self.dropout(pooled))


def build_cnn_lstm(
    *,
    num_classes: int = 7,
    encoder: str = DEFAULT_ARCH,
    in_channels: int = 3,
    width: int | None = None,
    rnn: str = "lstm",
    hidden: int = 256,
    layers: int = 1,
    bidirectional: bool = False,
    aggregate: str = "rnn",
    pool: str = "last",
    dropout: float = 0.5,
) -> nn.Module:
    """Face encoder + RNN; ``pool`` = "last" (final valid state) or "mean" (masked mean of RNN outputs)."""
    if rnn not in RNNS:
        raise MmferError(f"cnn_lstm: unknown rnn {rnn!r}; choose one of {', '.join(RNNS)}")
    if aggregate not in ("rnn", "mean"):
        raise MmferError(f"cnn_lstm: unknown aggregate {aggregate!r}; choose 'rnn' or 'mean'")
    if pool not in ("last", "mean"):
        raise MmferError(f"cnn_lstm: unknown pool {pool!r}; choose 'last' or 'mean'")
    if hidden < 1 or layers < 1:
        raise MmferError(f"cnn_lstm: hidden and layers must be >= 1, got {hidden}, {layers}")
    enc = build_face_encoder(arch=encoder, in_channels=in_channels, width=width)
    return CNNLSTM(
        enc, num_classes=num_classes, rnn=rnn, hidden=hidden, layers=layers, bidirectional=bidirectional,
        aggregate=aggregate, pool=pool, dropout=dropout,
    )
