"""Teachers for knowledge distillation (``distill:`` in a train config): trained models, frozen, whose averaged
tempered probabilities on each training batch the student learns to match (:class:`mmfer.engine.losses.
DistillationLoss`).

Why: an ensemble of fold models of two seeds reads unseen speakers better than one seed's, but predict would pay
for every model. A student per fold, taught by that fold's models, costs predict nothing more. Its out-of-fold
figure stays honest only if no teacher heard the fold's speakers, which :func:`load_teachers` checks from the
teachers' ``fold.json``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmfer.errors import MmferError

log = logging.getLogger(__name__)


class TeacherEnsemble(nn.Module):
    """The mean of ``teachers``' softmax at ``temperature``; always in eval mode, never trained."""

    def __init__(self, teachers: list[nn.Module], *, temperature: float):
        super().__init__()
        self.teachers = nn.ModuleList(teachers)
        self.temperature = float(temperature)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "TeacherEnsemble":
        return super().train(False)  # BatchNorm and dropout of a teacher stay as trained

    @torch.no_grad()
    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        probs = [torch.softmax(t(x, mask=mask).float() / self.temperature, dim=1) for t in self.teachers]
        return torch.stack(probs).mean(0)


def teacher_paths(paths: tuple[str, ...] | list[str], *, fold: int | None) -> list[Path]:
    """The teacher checkpoints of a run, ``{fold}`` replaced by the fold number (1-based) in a ``--folds`` run;
    ``{fold}`` outside one is an error, since there is no fold to choose."""
    out = []
    for p in paths:
        if "{fold}" in p:
            if fold is None:
                raise MmferError(f"distill.teachers: {p!r} names a fold ({{fold}}) but this run is not one of "
                                 "`--folds`; give the teacher's path itself")
            p = p.replace("{fold}", str(fold))
        out.append(Path(p))
    return out


def check_teacher_fold(path: Path, fold_info: dict[str, Any] | None) -> None:
    """In a fold run, a teacher must come from a run that held out exactly this fold's speakers (its
    ``fold.json`` beside the checkpoint), else its knowledge of them would inflate the fold's figure."""
    if fold_info is None:
        return
    info_path = path.parent / "fold.json"
    if not info_path.is_file():
        raise MmferError(f"distill.teachers: {path} has no fold.json beside it, so nothing shows that it never heard "
                         f"this fold's speakers ({', '.join(fold_info['speakers'])}); use the same fold of a "
                         "`mmfer train --folds` run")
    try:
        theirs = json.loads(info_path.read_text())
    except (OSError, ValueError) as e:
        raise MmferError(f"distill.teachers: {info_path}: unreadable ({e})") from None
    if sorted(theirs.get("speakers", [])) != sorted(fold_info["speakers"]) or theirs.get("by") != fold_info["by"]:
        raise MmferError(
            f"distill.teachers: {path} held out {theirs.get('by')} {', '.join(theirs.get('speakers', [])) or '(none)'}"
            f" but this fold holds out {fold_info['by']} {', '.join(fold_info['speakers'])}: a teacher that "
            "trained on this fold's held-out clips would leak them into its figure")


def load_teachers(distill: Any, *, kind: str, data_config: Any, fold_info: dict[str, Any] | None,
                  device: torch.device, precision: str) -> TeacherEnsemble | None:
    """The run's :class:`TeacherEnsemble` on ``device`` (None when ``distill.teachers`` is empty): each teacher
    checked to read the student's input kind (and, for log-mel, the same bands) and, in a fold run, to have held
    out the same fold; BatchNorm folded into convolutions (same outputs, less time), channels-last under bf16."""
    from mmfer.engine.checkpoint import load_checkpoint, model_from_checkpoint
    from mmfer.models.common import fold_batchnorm

    if not distill.teachers:
        return None
    fold = fold_info["index"] if fold_info is not None else None
    teachers = []
    for path in teacher_paths(distill.teachers, fold=fold):
        if not path.is_file():
            raise MmferError(f"distill.teachers: {path}: no such checkpoint")
        ckpt = load_checkpoint(path)
        model = model_from_checkpoint(ckpt)
        theirs = getattr(model, "input_kind", None)
        if theirs != kind:
            raise MmferError(f"distill.teachers: {path} reads {theirs!r} input but the student reads {kind!r}")
        bands = (ckpt.get("config") or {}).get("data", {}).get("n_mels")
        if kind == "logmel" and bands is not None and bands != data_config.n_mels:
            raise MmferError(f"distill.teachers: {path} hears {bands} mel bands but the student {data_config.n_mels} "
                             "(data.n_mels)")
        check_teacher_fold(path, fold_info)
        fold_batchnorm(model)
        teachers.append(model)
    ensemble = TeacherEnsemble(teachers, temperature=distill.temperature).to(device)
    if precision == "bf16":
        for m in ensemble.modules():
            if isinstance(m, nn.Conv2d):
                m.to(memory_format=torch.channels_last)
    log.info("distilling from %d teacher%s (weight %.2f, temperature %.1f): %s", len(teachers),
             "s" if len(teachers) > 1 else "", distill.weight, distill.temperature,
             ", ".join(str(p) for p in teacher_paths(distill.teachers, fold=fold)))
    return ensemble
