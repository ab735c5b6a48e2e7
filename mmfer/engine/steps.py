"""One optimisation step and what it needs (precision, optimiser, gradient scaler, loss with class weights and
teachers, learning-rate schedule), as training and ``mmfer bench`` both run them."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from mmfer.engine.config import TrainConfig
from mmfer.engine.device import autocast, training_precision
from mmfer.engine.losses import DistillationLoss, MaskedCrossEntropy
from mmfer.engine.mixing import mix_batch
from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS, NUM_CLASSES
from mmfer.models.common import conv2d_channels_last


def lr_factor(step: int, *, steps_per_epoch: int, optim: Any) -> float:
    """Linear warmup, then cosine to zero / step decay / constant, per optimizer step."""
    warm = optim.warmup_epochs * steps_per_epoch
    total = max(1, optim.epochs * steps_per_epoch)
    if step < warm:
        return (step + 1) / warm
    if optim.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warm) / max(1.0, total - warm))))
    if optim.schedule == "step":
        return optim.step_gamma ** (step // max(1, optim.step_epochs * steps_per_epoch))
    return 1.0


def class_weights(labels: list[int], *, power: float = 1.0, counts: np.ndarray | None = None) -> torch.Tensor:
    """Inverse-frequency weights (N / (K n_c)) ** power: with power 1 each present class weighs the same in
    the loss; a smaller power (0.5) lifts rare classes less, at less cost to the common ones. ``counts``
    (expected draws per class, e.g. under balanced sampling) replaces the counts of ``labels``."""
    if counts is None:
        counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=NUM_CLASSES).astype(np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    w = np.zeros(NUM_CLASSES)
    w[present] = (counts.sum() / (present.sum() * counts[present])) ** power
    return torch.tensor(w, dtype=torch.float32)


def optimisation_step(
    net: nn.Module,
    batch: dict[str, Any],
    *,
    device: torch.device,
    precision: str,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: Any,
    grad_clip: float | None,
    frozen: Any = (),
    mixup: float = 0.0,
    cutmix: float = 0.0,
    teacher: nn.Module | None = None,
    adversary: Any = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward/backward/step on a collated batch: (labels, logits, loss). Shared by training and
    ``mmfer bench``, so the benchmark times exactly the step that training runs. ``precision`` is
    :func:`training_precision`'s answer; under bf16 image batches go channels-last, the layout the CPU's
    bf16 kernels are fast in. ``frozen`` parameters get no update (two-stage fine-tuning). ``teacher``
    (:class:`mmfer.engine.distill.TeacherEnsemble`) reads the same, augmented, batch and its probabilities go
    to the criterion (a :class:`mmfer.engine.losses.DistillationLoss`). ``adversary``
    (:class:`mmfer.engine.adversary.DomainAdversary`) adds its loss on the batch's ``domain``, blended as the
    labels are under mixup; the loss returned is the classifier's alone, or, where the whole loss is not finite,
    that loss, with no step taken."""
    x, y = batch["x"].to(device, non_blocking=True), batch["label"].to(device)
    mask = batch["mask"].to(device) if batch["mask"] is not None else None
    mixed = mix_batch(x, y, mask, mixup=mixup, cutmix=cutmix)
    if mixed is not None:
        x, mask = mixed.x, mixed.mask
    if precision == "bf16" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(device, precision):
        logits = net(x, mask=mask)
        taught = {} if teacher is None else {"teacher_probs": teacher(x, mask=mask)}
    if logits.dim() != 2 or logits.shape[1] != NUM_CLASSES:  # a new model's head: said before any scoring
        raise MmferError(f"the model returns logits of shape {tuple(logits.shape)}; a branch returns (batch, "
                         f"{NUM_CLASSES}), one score per class of {', '.join(EMOTIONS)}")
    if batch.get("teacher_probs") is not None:  # given per clip (distill.targets); a blend blends them alike
        given = batch["teacher_probs"].to(device)
        taught = {"teacher_probs": given if mixed is None else mixed.lam * given + (1 - mixed.lam) * given[mixed.perm]}
    allowed = batch.get("allowed")  # the classes of each clip's corpus (mmfer.engine.losses)
    allowed = allowed.to(device) if allowed is not None else None
    loss = (criterion(logits.float(), y, **taught) if allowed is None
            else criterion(logits.float(), y, allowed, **taught))
    if mixed is not None:  # the teachers' term once: weighted lam here, 1 - lam in the other clip's term
        # each clip's term over its own corpus's classes: a blend with a clip of a corpus without Disgust
        # pushes Disgust down only in that clip's share, as a whole clip of it would not at all
        other = criterion(logits.float(), mixed.y_other, **taught) if allowed is None else criterion(
            logits.float(), mixed.y_other, allowed[mixed.perm], **taught)
        loss = mixed.lam * loss + (1 - mixed.lam) * other
    total = loss
    if adversary is not None:
        total = loss + adversary.loss(batch["domain"].to(device), perm=None if mixed is None else mixed.perm,
                                      lam=1.0 if mixed is None else mixed.lam)
    if not torch.isfinite(total.detach()):  # no step on it: the weights stay as they were; train_epoch says where
        return y, logits, total
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    for p in frozen:
        p.grad = None
    if grad_clip:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return y, logits, loss


def training_pieces(config: TrainConfig, model: nn.Module, dev: torch.device, labels: list[int],
                    class_counts: np.ndarray | None = None) -> dict[str, Any]:
    """Precision, optimizer, gradient scaler and loss of a run, as training and ``mmfer bench`` both set them up.
    ``class_counts``: the expected draws per class when sampling is balanced (else the labels' counts)."""
    precision = training_precision(dev, config.amp, model)
    if precision == "bf16":
        conv2d_channels_last(model)
    weight = (class_weights(labels, power=config.loss.balance_power, counts=class_counts).to(dev)
              if config.loss.class_balanced else None)
    criterion: nn.Module = MaskedCrossEntropy(weight=weight, label_smoothing=config.loss.label_smoothing)
    if config.distill.teachers or config.distill.targets:
        criterion = DistillationLoss(criterion, weight=config.distill.weight, temperature=config.distill.temperature)
    return {
        "precision": precision,
        "optimizer": torch.optim.AdamW(model.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay),
        "scaler": torch.amp.GradScaler("cuda", enabled=precision == "fp16"),
        "criterion": criterion,
    }


def accuracy_uar(labels: np.ndarray, probs: np.ndarray, *, unscored: np.ndarray | None = None) -> tuple[float, float]:
    """Accuracy and mean class recall (uar) over clips with a known label; NaN when there are none.

    ``unscored``: the labels of clips the model never saw (left out of the dataset: unreadable, no face or no
    sound), counted as no prediction, as ``scores_<split>.csv`` and ``mmfer evaluate`` count them."""
    from mmfer.metrics import evaluate
    from mmfer.scores import uniform_scores

    if unscored is not None and len(unscored):
        labels = np.concatenate([labels, unscored])
        probs = np.concatenate([probs, uniform_scores(len(unscored))])
    keep = labels >= 0
    if not keep.any():
        return float("nan"), float("nan")
    result = evaluate(labels[keep].tolist(), probs[keep])
    return result["accuracy"], result["uar"]


def unscored_labels(records: list, dataset: Any) -> np.ndarray:
    """Class indices of the labelled ``records`` that ``dataset`` left out (its ``skipped``)."""
    from mmfer.labels import index_of

    left = {clip_id for clip_id, _ in dataset.skipped}
    return np.asarray([index_of(r.label) for r in records if r.clip_id in left and r.label], dtype=np.int64)
