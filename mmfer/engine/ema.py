"""Weights averaged over training steps (``optim.ema_decay``): the average is what a run validates and keeps."""

from __future__ import annotations

import torch
from torch import nn


def ema_step_decay(decay: float, n_averaged: int) -> float:
    """The weight the average keeps at its ``n_averaged``-th update so that it is the normalised exponentially
    weighted mean of every step's weights (decay ** age, divided by their sum): decay * (1 - decay ** n) /
    (1 - decay ** (n + 1)), 0 at the first update and ``decay`` in the long run.

    Why: the plain recursion, started from the first step's weights, leaves them decay ** n of the average.
    On a short run that is not small (780 steps at 0.998: 21% of untrained weights and their BatchNorm
    statistics), and an audio CNN averaged that way named one class for every clip."""
    return decay * (1.0 - decay ** n_averaged) / (1.0 - decay ** (n_averaged + 1))


def ema_model(model: nn.Module, decay: float):
    """An exponential moving average of ``model``'s weights and buffers (``ema_step_decay``), or None when
    ``decay`` is 0."""
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        keep = ema_step_decay(decay, int(n_averaged))
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, 1.0 - keep)
        else:  # BatchNorm's step counters
            for a, c in zip(averaged, current, strict=True):
                a.copy_(c)

    return AveragedModel(model, multi_avg_fn=update, use_buffers=True)
