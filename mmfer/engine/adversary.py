"""Domain-adversarial training (Ganin & Lempitsky, 2015): a small head guesses each training clip's corpus (or
speaker) from the features the model's classifier reads, and its gradient reaches the network reversed.

Why: a model trained on a few corpora can learn to read emotion partly from what tells the corpora apart (the
channel, the room, the language, the speakers' voices), which a new corpus does not share. The reversed gradient
pushes the network towards features from which the head cannot tell them apart. The head trains normally; only
what flows back into the model is reversed and scaled by ``scale`` times a ramp from 0 to 1 over training
(``2 / (1 + exp(-10 p)) - 1``, p the share of steps done), so the classifier learns first. Inference never runs it:
the model's weights and outputs keep their form.
"""

from __future__ import annotations

import math
import weakref
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmfer.engine.config import ADVERSARY_TARGETS
from mmfer.errors import MmferError


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward; the gradient multiplied by ``-scale`` backward."""
    return _ReverseGradient.apply(x, scale)


def ramp(progress: float) -> float:
    """DANN's schedule: 0 at the start, about 0.76 a fifth of the way, 1 at the end."""
    return 2.0 / (1.0 + math.exp(-10.0 * min(max(progress, 0.0), 1.0))) - 1.0


def domain_indices(records: Sequence[Any], by: str) -> tuple[np.ndarray, list[str]]:
    """Each record's domain (its corpus or speaker) as an index into the sorted domain names, and the names."""
    from mmfer.data.speech_list import corpus_of
    from mmfer.data.splits import speaker_of

    if by not in ADVERSARY_TARGETS:
        raise MmferError(f"adversary.by: {by!r} is not one of {', '.join(ADVERSARY_TARGETS)}")
    names = [corpus_of(r) if by == "corpus" else (speaker_of(r) or "") for r in records]
    unnamed = [r.clip_id for r, n in zip(records, names) if not n]
    if unnamed:
        source = ("a speech list, `mmfer train --data LIST.csv` with a corpus column, which only the audio models "
                  "read (a cache's clips can take by: speaker)" if by == "corpus" else
                  "a speech list's speaker column, or RAVDESS or CREMA-D file names")
        raise MmferError(f"adversary.by {by}: {len(unnamed)} training clip(s) have no {by} (e.g. "
                         f"{', '.join(unnamed[:3])}); the {by} comes from {source}. Otherwise set adversary.scale: 0")
    levels = sorted(set(names))
    if len(levels) < 2:
        other = "by: speaker, or add a corpus" if by == "corpus" else "more speakers"
        raise MmferError(f"adversary.by {by}: every training clip has the same {by} ({levels[0] if levels else 'none'}); "
                         f"there is nothing to tell apart: use {other}, or set adversary.scale: 0")
    index = {n: i for i, n in enumerate(levels)}
    return np.asarray([index[n] for n in names], dtype=np.int64), levels


def class_layer(model: nn.Module) -> nn.Linear:
    """The layer that turns features into class scores: ``model.classifier``, else the model's last
    ``nn.Linear`` with one output per class."""
    from mmfer.labels import NUM_CLASSES

    layer = getattr(model, "classifier", None)
    if not isinstance(layer, nn.Linear):
        layer = next((m for m in reversed(list(model.modules()))
                      if isinstance(m, nn.Linear) and m.out_features == NUM_CLASSES), None)
    if layer is None:
        raise MmferError(f"adversary: model {type(model).__name__} has no linear layer into the {NUM_CLASSES} "
                         "classes whose input the adversary could read; set adversary.scale: 0")
    if getattr(model, "scores_per_frame", False):  # e.g. cnn_lstm with aggregate: mean
        raise MmferError(f"adversary: model {type(model).__name__} scores each frame and averages the scores, so its "
                         "class layer reads one feature vector per frame, not per clip; use model.kwargs.aggregate: "
                         "rnn, or set adversary.scale: 0")
    return layer


class DomainAdversary(nn.Module):
    """The head and its hook on the model's class layer (:func:`class_layer`): after each training forward of the
    model, :meth:`loss` reads the features the classifier was given. ``total_steps`` sets the ramp; the steps
    done are a buffer, so a resumed run continues the ramp where it stopped."""

    def __init__(self, model: nn.Module, *, domains: Sequence[str], scale: float, hidden: int,
                 total_steps: int) -> None:
        super().__init__()
        classifier = class_layer(model)
        self.domains = list(domains)
        self.end_scale, self.total_steps = float(scale), max(1, int(total_steps))
        self.head = nn.Sequential(nn.Linear(classifier.in_features, hidden), nn.ReLU(),
                                  nn.Linear(hidden, len(self.domains)))
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self._features: torch.Tensor | None = None
        me = weakref.ref(self)  # the model's hook must not keep the adversary alive after its run

        def keep(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            adversary = me()
            if adversary is not None and module.training:  # evaluation forwards leave nothing behind
                adversary._features = args[0]

        self._hook = classifier.register_forward_pre_hook(keep)
        self.correct, self.seen = 0, 0  # the head's accuracy since the last :meth:`take_accuracy`

    def scale(self) -> float:
        return self.end_scale * ramp(float(self.steps_done) / self.total_steps)

    def loss(self, domain: torch.Tensor, *, perm: torch.Tensor | None = None, lam: float = 1.0) -> torch.Tensor:
        """Cross-entropy of the head on the last training forward's features (under mixup the two clips'
        domains blended by ``lam``, as their labels are), its gradient reversed into the model."""
        if self._features is None:
            raise MmferError("adversary: no training forward of the model since the last step")
        feats, self._features = self._features, None
        if feats.dim() != 2:  # a per-step class layer that its model does not declare (scores_per_frame)
            raise MmferError(f"adversary: the model's class layer reads features of shape {tuple(feats.shape)}, "
                             "not one vector per clip; set adversary.scale: 0 for this model")
        logits = self.head(reverse_gradient(feats.float(), self.scale()))
        loss = F.cross_entropy(logits, domain)
        if perm is not None:
            loss = lam * loss + (1.0 - lam) * F.cross_entropy(logits, domain[perm])
        self.steps_done += 1
        self.correct += int((logits.detach().argmax(1) == domain).sum())
        self.seen += int(domain.numel())
        return loss

    def take_accuracy(self) -> float:
        """The head's accuracy on the training batches since the last call (chance is about 1 / domains)."""
        acc = self.correct / self.seen if self.seen else float("nan")
        self.correct, self.seen = 0, 0
        return acc

    def remove(self) -> None:
        self._hook.remove()


def build_adversary(config: Any, model: nn.Module, train_ds: Any, *, steps_per_epoch: int) -> DomainAdversary | None:
    """The run's adversary (None when ``adversary.scale`` is 0), with each training clip's domain index attached
    to ``train_ds`` (its items then carry ``domain``)."""
    acfg = config.adversary
    if not acfg.scale:
        return None
    domain, names = domain_indices(train_ds.records, acfg.by)
    train_ds.domain = domain
    return DomainAdversary(model, domains=names, scale=acfg.scale, hidden=acfg.hidden,
                           total_steps=config.optim.epochs * steps_per_epoch)
