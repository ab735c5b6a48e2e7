"""Honest figures for methods tuned on Val: stratified k-fold cross-validation.

Val has a few hundred clips, so weights tuned and scored on the same clips overstate what the
Test set will show. Cross-validation tunes on k-1 folds and scores the held-out fold; the pooled
out-of-fold predictions give the figure to report.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import numpy as np

from mmfer.errors import MmferError
from mmfer.metrics import evaluate

from mmfer.fusion.methods import FusionModel


def stratified_folds(y: np.ndarray, *, folds: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs, stratified by class and seeded; ``folds`` shrinks to the clip count."""
    from sklearn.model_selection import KFold, StratifiedKFold

    y = np.asarray(y)
    n = len(y)
    k = min(int(folds), n)
    if k < 2:
        raise MmferError(f"cross-validation needs at least 2 labelled Val clips and --cv-folds >= 2 (got {n} clips, {folds} "
                          "folds)")
    counts = np.bincount(y)
    counts = counts[counts > 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if counts.max() >= k:
            splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
            return [(tr, te) for tr, te in splitter.split(np.zeros(n), y)]
        splitter = KFold(n_splits=k, shuffle=True, random_state=seed)
        return [(tr, te) for tr, te in splitter.split(np.zeros(n))]


def figures(fused: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Accuracy, uar, macro-F1 and clip count of fused scores against class indices ``y``."""
    m = evaluate(np.asarray(y).tolist(), fused)
    return {"accuracy": m["accuracy"], "uar": m["uar"], "macro_f1": m["macro_f1"], "n": m["n"]}


def cross_validate(
    make_model: Callable[[], Any],
    probs_list: Sequence[np.ndarray],
    labels: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit a fresh model on k-1 folds, predict the held-out fold; metrics of the pooled out-of-fold
    predictions (accuracy, uar) and the per-fold accuracies."""
    y = np.asarray(labels, dtype=np.int64)
    probs_list = [np.asarray(p, dtype=np.float64) for p in probs_list]
    oof = np.zeros_like(probs_list[0])
    fold_acc: list[float] = []
    splits = stratified_folds(y, folds=folds, seed=seed)
    for tr, te in splits:
        model = make_model().fit([p[tr] for p in probs_list], y[tr])
        oof[te] = model.predict([p[te] for p in probs_list])
        fold_acc.append(float(figures(oof[te], y[te])["accuracy"]))  # a uniform row is no prediction, as pooled
    return {
        **figures(oof, y),
        "folds": len(splits),
        "seed": seed,
        "fold_accuracy": fold_acc,
        "out_of_fold": oof,
    }


def cross_validate_method(
    method: str,
    probs_list: Sequence[np.ndarray],
    labels: np.ndarray,
    *,
    calibrate: bool = False,
    objective: str = "accuracy",
    folds: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """``cross_validate`` for a named fusion method (calibration, if any, is refitted inside each fold)."""
    return cross_validate(
        lambda: FusionModel(method, calibrate=calibrate, objective=objective, seed=seed),
        probs_list,
        labels,
        folds=folds,
        seed=seed,
    )
