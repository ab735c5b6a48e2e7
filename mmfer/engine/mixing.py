"""Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019): training on blends of two examples.

Why: on FER2013-sized data a CNN memorises its training faces within a few dozen epochs; blended inputs
with blended targets keep the loss informative for longer and calibrate the probabilities that fusion
averages. Draws come from torch's global generator, which checkpoints save, so a resumed run blends alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class MixedBatch:
    """Inputs blended as ``lam * x + (1 - lam) * x[perm]``; the loss blends the two targets the same way."""

    x: torch.Tensor
    mask: torch.Tensor | None
    y_other: torch.Tensor
    lam: float
    perm: torch.Tensor  # which clip each was blended with: anything given per clip blends by it


def _beta(alpha: float) -> float:
    return float(torch.distributions.Beta(alpha, alpha).sample())


def mix_batch(
    x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None, *, mixup: float = 0.0, cutmix: float = 0.0
) -> MixedBatch | None:
    """Blend a batch with a shuffled copy of itself; None when both alphas are 0 or the batch has one item.

    ``cutmix`` pastes a rectangle over the last two axes, so it needs an image-like input (B, ..., H, W);
    with both on, each batch takes one of the two at random. A mask (frames or time steps present) becomes
    the union of the two, since either example can contribute there.
    """
    modes = [m for m, a in (("mixup", mixup), ("cutmix", cutmix)) if a > 0]
    if cutmix > 0 and x.dim() < 4:
        modes = [m for m in modes if m != "cutmix"]
    if not modes or x.shape[0] < 2:
        return None
    mode = modes[int(torch.randint(len(modes), ()))] if len(modes) > 1 else modes[0]
    perm = torch.randperm(x.shape[0], device="cpu").to(x.device)
    if mask is not None:
        mask = mask | mask[perm] if mask.dtype == torch.bool else torch.maximum(mask, mask[perm])
    if mode == "mixup":
        lam = _beta(mixup)
        return MixedBatch(lam * x + (1 - lam) * x[perm], mask, y[perm], lam, perm)
    h, w = x.shape[-2:]
    lam = _beta(cutmix)
    ch, cw = int(round(h * (1 - lam) ** 0.5)), int(round(w * (1 - lam) ** 0.5))
    cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
    y0, y1 = max(cy - ch // 2, 0), min(cy + (ch - ch // 2), h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + (cw - cw // 2), w)
    out = x.clone()
    out[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
    lam = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)  # the share actually left, after clipping at the border
    return MixedBatch(out, mask, y[perm], lam, perm)
