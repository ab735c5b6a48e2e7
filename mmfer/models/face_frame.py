"""Single face-image classifier (the FER2013 model) and the encoder hand-over to the video model.

Why: AFEW has a few hundred training clips, far too few to learn face features from scratch; training the
encoder on tens of thousands of still faces first and then loading it into ``cnn_lstm`` is the usual fix.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from mmfer.errors import MmferError
from mmfer.models.common import check_input, check_mask
from mmfer.models.face_encoders import DEFAULT_ARCH, build_face_encoder


class FaceFrame(nn.Module):
    """encoder -> dropout -> linear; input (B, C, H, W), optional mask (B,) zeroes the images it hides."""

    input_kind = "face_image"

    def __init__(self, encoder: nn.Module, *, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.out_features, num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_input(x, 4, where="face_frame", layout="(B, C, H, W)", channels=getattr(self.encoder, "in_channels", None))
        mask = check_mask(mask, (x.shape[0],), where="face_frame")
        if mask is not None:
            x = x * mask[:, None, None, None].to(x.dtype)
        return self.classifier(self.dropout(self.encoder(x)))


def build_face_frame(
    *,
    num_classes: int = 7,
    encoder: str = DEFAULT_ARCH,
    in_channels: int = 3,
    width: int | None = None,
    dropout: float = 0.5,
) -> nn.Module:
    """Face-image classifier; its ``.encoder`` matches a ``cnn_lstm`` built with the same encoder/in_channels/width."""
    return FaceFrame(build_face_encoder(arch=encoder, in_channels=in_channels, width=width), num_classes=num_classes, dropout=dropout)


def _state_dict_of(state: Mapping[str, Any]) -> Mapping[str, Any]:
    """Accept a state dict, or a checkpoint dict holding one under a usual key."""
    for key in ("state_dict", "model_state", "model_state_dict", "model"):
        inner = state.get(key) if isinstance(state, Mapping) else None
        if isinstance(inner, Mapping) and inner and all(isinstance(k, str) for k in inner):
            return inner
    return state


def load_encoder_from(model: nn.Module, state: Mapping[str, Any] | nn.Module) -> list[str]:
    """Copy encoder weights into ``model.encoder`` from a face_frame/cnn_lstm model, state dict or checkpoint.

    Keys may be ``encoder.*`` (a whole model's state) or bare (an encoder's own state). Returns the encoder
    keys that were not found (left at their current values); shape mismatches (another arch or width) and
    a source with no encoder weights at all are errors.
    """
    if not hasattr(model, "encoder"):
        raise MmferError(f"load_encoder_from: {type(model).__name__} has no .encoder (use face_frame or cnn_lstm)")
    if isinstance(state, nn.Module):
        state = state.state_dict()
    kwargs = state.get("model_kwargs")  # a run that left encoder at the builders' default has none recorded
    theirs = (kwargs.get("encoder", DEFAULT_ARCH if state.get("model_name") in ("face_frame", "cnn_lstm") else None)
              if isinstance(kwargs, Mapping) else None)
    ours = getattr(model.encoder, "arch", None)
    if theirs and ours and theirs != ours:  # a checkpoint says which family it is: nothing of one fits another
        raise MmferError(f"load_encoder_from: the checkpoint's encoder is {theirs!r}, this model's {ours!r} "
                         f"(model.kwargs.encoder); start from a face model trained with encoder: {ours}")
    sd = _state_dict_of(state)
    prefixed = {k[len("encoder."):]: v for k, v in sd.items() if k.startswith("encoder.")}
    source = prefixed if prefixed else dict(sd)
    target = model.encoder.state_dict()
    matched = {k: v for k, v in source.items() if k in target}
    if not matched:
        if prefixed:  # an encoder, but none of whose parameters this one has: another arch
            raise MmferError(
                f"load_encoder_from: the given encoder's parameters ({', '.join(list(prefixed)[:3])}, ...) are not "
                f"this {getattr(model.encoder, 'arch', type(model.encoder).__name__)} encoder's "
                f"({', '.join(list(target)[:3])}, ...): build both models with the same encoder"
            )
        raise MmferError(
            "load_encoder_from: the given weights hold no encoder parameters "
            f"(first keys: {', '.join(list(sd)[:4])}); pass a face_frame or cnn_lstm checkpoint"
        )
    bad = [f"{k}: {tuple(v.shape)} vs {tuple(target[k].shape)}" for k, v in matched.items() if tuple(v.shape) != tuple(target[k].shape)]
    if bad:
        raise MmferError(
            "load_encoder_from: encoder shapes differ (" + "; ".join(bad[:3]) + "); build both models with the same "
            "encoder, in_channels and width"
        )
    model.encoder.load_state_dict(matched, strict=False)
    return sorted(k for k in target if k not in matched)
