"""Training losses: cross-entropy that can leave out, clip by clip, the classes a clip's corpus does not have,
and its mix with matching teachers (distillation).

Why: pooled speech corpora differ in their classes (nEMO has no Disgust). With a plain softmax over all seven
classes, every nEMO clip pushes the Disgust logit down, teaching the model that Disgust never occurs. Here
a clip's softmax (and its label smoothing) runs over the classes its corpus has: the absent classes' logits
get no gradient at all from it, and learn only from the corpora that have them. Scoring is unchanged (all
seven classes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MaskedCrossEntropy(nn.Module):
    """``nn.CrossEntropyLoss(weight, label_smoothing)``, optionally over a per-clip set of allowed classes.

    Without ``allowed`` (or with every class allowed) it equals PyTorch's loss exactly, including its
    weighting (mean over clips weighted by their class's weight, smoothing terms weighted by each class's
    weight). With ``allowed`` (B, K) bool, clip i's softmax runs over its allowed classes only and the
    smoothing mass is spread over them.
    """

    def __init__(self, weight: torch.Tensor | None = None, label_smoothing: float = 0.0):
        super().__init__()
        self.register_buffer("weight", weight if weight is None else weight.float(), persistent=False)
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
        if allowed is None:
            return F.cross_entropy(logits, target, weight=self.weight, label_smoothing=self.label_smoothing)
        allowed = allowed.to(device=logits.device, dtype=torch.bool)
        allowed = allowed | F.one_hot(target, logits.shape[1]).bool()  # a clip's own class is always allowed
        logp = torch.log_softmax(logits.masked_fill(~allowed, float("-inf")), dim=1)
        logp = logp.masked_fill(~allowed, 0.0)  # no -inf * 0 below; these entries carry no gradient
        w = self.weight if self.weight is not None else logits.new_ones(logits.shape[1])
        eps = self.label_smoothing
        nll = -logp.gather(1, target[:, None])[:, 0] * w[target]
        smooth = -(logp * w[None, :] * allowed).sum(1) / allowed.sum(1)
        return ((1 - eps) * nll + eps * smooth).sum() / w[target].sum()


class DistillationLoss(nn.Module):
    """The labels' loss mixed with matching the teachers: ``(1 - weight) * base + weight * T^2 * KL``.

    ``teacher_probs`` are the teachers' probabilities at temperature ``T`` (:class:`mmfer.engine.distill.
    TeacherEnsemble`); the KL divergence is that of the student's tempered softmax from them, scaled by T^2 so
    that its gradients keep their size whatever the temperature (Hinton et al., 2015). Without teacher
    probabilities it is the base loss alone. In a mixed batch both terms (lam and 1 - lam) get the teachers'
    probabilities, so the KL term weighs ``weight`` in all. The KL term runs over all classes: a teacher's
    belief about a class the clip's corpus lacks is knowledge, not a label.
    """

    def __init__(self, base: nn.Module, *, weight: float, temperature: float):
        super().__init__()
        self.base = base
        self.weight = float(weight)
        self.temperature = float(temperature)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, allowed: torch.Tensor | None = None, *,
                teacher_probs: torch.Tensor | None = None) -> torch.Tensor:
        hard = self.base(logits, target) if allowed is None else self.base(logits, target, allowed)
        if teacher_probs is None:
            return hard
        t = self.temperature
        soft = F.kl_div(torch.log_softmax(logits / t, dim=1), teacher_probs.float(), reduction="batchmean") * t * t
        return (1.0 - self.weight) * hard + self.weight * soft
