"""Late fusion methods: each one ``fit(probs_list, labels)`` on Val, then ``predict(probs_list) -> probs``.

``probs_list`` holds one (N, 7) array per branch (columns in ``EMOTIONS`` order), ``labels`` the
true class indices. All parameters are plain numbers (``params()``) so they go into weights.json.
Weighted searches keep the best objective (accuracy or UAR) and break ties by log-loss, so among
the many weight vectors that classify Val equally well the best-calibrated one wins.
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from mmfer.errors import MmferError
from mmfer.labels import NUM_CLASSES
from mmfer.scores import is_uniform, normalise_rows

EPS = 1e-7
OBJECTIVES = ("accuracy", "uar")


# ---------------------------------------------------------------- helpers
def _stack(probs_list: Sequence[np.ndarray]) -> np.ndarray:
    if not probs_list:
        raise MmferError("fusion: no branches given")
    arr = np.stack([np.asarray(p, dtype=np.float64) for p in probs_list])
    if arr.ndim != 3 or arr.shape[2] != NUM_CLASSES:
        raise MmferError(f"fusion: expected (branches, N, {NUM_CLASSES}) scores, got {arr.shape}")
    return arr


def objective_scores(fused: np.ndarray, y: np.ndarray, objective: str = "accuracy") -> np.ndarray:
    """Objective of one or many fused arrays: ``fused`` (..., N, 7) -> (...) values. A uniform row (no branch
    saw the clip) is no prediction and counts as wrong, as in ``mmfer.metrics.evaluate``."""
    pred = fused.argmax(axis=-1)
    correct = (pred == y) & ~is_uniform(fused)
    if objective == "accuracy":
        return correct.mean(axis=-1)
    if objective == "uar":
        classes = np.unique(y)
        recalls = [correct[..., y == c].mean(axis=-1) for c in classes]
        return np.mean(recalls, axis=0)
    raise MmferError(f"fusion: unknown objective {objective!r}; expected one of {', '.join(OBJECTIVES)}")


def log_loss(fused: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean negative log-probability of the true class, for one or many fused arrays."""
    idx = np.broadcast_to(np.asarray(y)[:, None], fused.shape[:-1] + (1,))
    p = np.take_along_axis(fused, idx, axis=-1)
    return -np.log(np.clip(p[..., 0], EPS, None)).mean(axis=-1)


def _best(values: np.ndarray, losses: np.ndarray) -> int:
    """Index of the highest objective, ties (within 1e-12) broken by the lowest log-loss."""
    top = values.max()
    cand = np.flatnonzero(values >= top - 1e-12)
    return int(cand[np.argmin(losses[cand])])


def simplex_grid(n: int, step: float = 0.1) -> np.ndarray:
    """All weight vectors of ``n`` non-negative multiples of ``step`` summing to 1."""
    k = int(round(1.0 / step))
    rows = [c for c in itertools.product(range(k + 1), repeat=n - 1) if sum(c) <= k]
    grid = np.array([[*c, k - sum(c)] for c in rows], dtype=np.float64) / k
    return grid


MAX_CANDIDATES = 20_000  # weight vectors one search scores, beyond the full grid of a few branches


def candidate_weights(n: int, *, step: float = 0.1, max_grid: int = 4, samples: int = 2000, seed: int = 0,
                      faces: bool = True) -> np.ndarray:
    """Grid over the simplex for up to ``max_grid`` branches. Beyond that, the uniform vector, every single
    branch, the grid of every 2 to ``max_grid`` branches with the others at 0 (smaller sets first, as many
    sizes as ``MAX_CANDIDATES`` allows: all of 2 to 4 for up to 9 branches) and seeded Dirichlet samples. So the
    search never reads below any subset of up to 4 branches in-sample (random points of the whole simplex
    alone miss its faces: six branches had read below two of them); against a subset of 5 or more branches
    it is a random search and can. ``faces=False`` leaves the subset grids out (per_class's passes, which start
    from the weighted search's best and would pay for them once per class and pass)."""
    if n == 1:
        return np.ones((1, 1))
    if n <= max_grid:
        return simplex_grid(n, step)
    rng = np.random.default_rng(seed)
    rand = rng.dirichlet(np.ones(n), size=samples)
    rows = [np.full((1, n), 1.0 / n), np.eye(n)]
    total = 1 + n + samples
    for k in range(2, max_grid + 1 if faces else 2):
        face = simplex_grid(k, step)
        face = face[(face > 0).all(axis=1)]  # points of smaller faces are added with those
        subsets = list(itertools.combinations(range(n), k))
        if total + len(subsets) * len(face) > MAX_CANDIDATES:
            break
        for subset in subsets:
            block = np.zeros((len(face), n))
            block[:, subset] = face
            rows.append(block)
        total += len(subsets) * len(face)
    return np.vstack([*rows, rand])


def _search(stack: np.ndarray, y: np.ndarray, cands: np.ndarray, objective: str, *, chunk: int = 256) -> tuple[int, float]:
    """Best candidate weight vector (index, objective) for a weighted mean of ``stack`` (B, N, C)."""
    vals, losses = [], []
    for s in range(0, len(cands), chunk):
        fused = np.einsum("wb,bnc->wnc", cands[s:s + chunk], stack)
        vals.append(objective_scores(fused, y, objective))
        losses.append(log_loss(fused, y))
    v, l = np.concatenate(vals), np.concatenate(losses)
    i = _best(v, l)
    return i, float(v[i])


def _check_fit(stack: np.ndarray, y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.int64)
    if y.ndim != 1 or len(y) != stack.shape[1]:
        raise MmferError(f"fusion: {len(y)} labels for {stack.shape[1]} clips")
    if len(y) == 0:
        raise MmferError("fusion: no labelled clips to tune on")
    if y.min() < 0 or y.max() >= NUM_CLASSES:
        raise MmferError("fusion: labels must be class indices 0..6 (unknown labels cannot be used for tuning)")
    return y


# ---------------------------------------------------------------- methods
# The methods that are a (per-class) weighted mean of branch probabilities: they stay meaningful when a branch
# has nothing for a clip (its weight is left out and the rest renormalised), so predict and bundles use them.
WEIGHTED_MEAN_METHODS = ("weighted", "mean", "exp_weighted", "per_class")


def missing_rows(stack: np.ndarray) -> np.ndarray:
    """(B, N) bool: the rows a branch could not score. Score CSVs hold uniform rows for clips a branch could not
    see (no face for a face branch, no sound for an audio one), so an exactly uniform row is a missing one."""
    return is_uniform(stack, axis=2)


def weighted_mean(stack: np.ndarray, weights: np.ndarray, *, missing: np.ndarray | None = None) -> np.ndarray:
    """Fused (N, 7) probabilities from branch probabilities (B, N, 7) and weights (B,) or (B, 7): the one
    weighted mean of ``mmfer fuse`` and predict, with one rule for a missing branch: its weight is left out and
    the others' renormalised (a clip without a face is scored by its sound alone, not pulled towards uniform).
    Where the present branches' weights are all zero (a branch the Val search switched off, but the only one
    that saw this clip) they count equally; a clip no branch saw stays uniform."""
    stack = np.asarray(stack, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim not in (1, 2) or w.shape[0] != stack.shape[0]:
        raise MmferError(f"fusion: weights of shape {w.shape} for {stack.shape[0]} branches; give one weight per "
                         f"branch, or one per branch and class ({stack.shape[0]}, {stack.shape[2]})")
    w = np.broadcast_to(w[:, None] if w.ndim == 1 else w, (stack.shape[0], stack.shape[2]))  # (B, 7)
    present = ~missing_rows(stack) if missing is None else ~np.asarray(missing, bool)  # (B, N)
    wn = w[:, None, :] * present[:, :, None]  # (B, N, 7)
    dead = ~np.any(wn > 0, axis=0)  # (N, 7): no present branch has weight here
    wn = np.where(dead[None], present[:, :, None].astype(np.float64), wn)
    nobody = ~present.any(axis=0)  # no branch saw the clip: the plain mean (uniform rows stay uniform)
    wn[:, nobody, :] = 1.0
    # per class, the present weights scaled up to the whole weight of that class: with every branch there this
    # is the plain weighted sum; per-class weights keep their class balance when a branch is missing
    total, kept = wn.sum(axis=0), np.where(dead | nobody[:, None], 1.0, 0.0)  # (N, 7)
    whole = np.broadcast_to(w.sum(axis=0), total.shape)
    scale = np.where((kept > 0) | (total <= 0), 1.0, whole / np.maximum(total, 1e-300))
    return normalise_rows((wn * stack).sum(axis=0) * scale)


class Fuser:
    """Base class: subclasses set ``name`` and implement ``fit``/``predict``/``params``."""

    name = "base"
    n_branches: int | None = None

    def fit(self, probs_list: Sequence[np.ndarray], labels: np.ndarray) -> "Fuser":
        raise NotImplementedError

    def predict(self, probs_list: Sequence[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        return {}

    def _check_predict(self, probs_list: Sequence[np.ndarray]) -> np.ndarray:
        if self.n_branches is None:  # unfitted weights would fuse with None
            raise MmferError(f"fusion: fit the {self.name!r} fusion on Val scores before predict")
        stack = _stack(probs_list)
        if self.n_branches is not None and stack.shape[0] != self.n_branches:
            raise MmferError(f"fusion: fitted on {self.n_branches} branches, asked to predict from {stack.shape[0]}")
        return stack


class MeanFusion(Fuser):
    """Plain average of the branch probabilities (MMAction2's report_accuracy with equal coefficients)."""

    name = "mean"

    def fit(self, probs_list, labels):
        self.n_branches = len(probs_list)
        return self

    def predict(self, probs_list):
        return weighted_mean(self._check_predict(probs_list), np.ones(self.n_branches))

    def params(self):
        return {"weights": [1.0 / self.n_branches] * self.n_branches}


class MajorityVote(Fuser):
    """Each branch that saw the clip votes for its top class; ties go to the class with the highest mean
    probability of those branches. A branch's uniform row (it saw nothing) casts no vote: its argmax would be
    Angry by position alone. A clip no branch saw stays uniform (no prediction).

    The output puts the vote share on each class plus a small share of the mean probabilities, so
    argmax is the vote winner and the rows still sum to 1.
    """

    name = "majority"
    tie_weight = 1e-3

    def fit(self, probs_list, labels):
        self.n_branches = len(probs_list)
        return self

    def predict(self, probs_list):
        stack = self._check_predict(probs_list)
        present = ~missing_rows(stack)  # (B, N)
        votes = np.zeros(stack.shape[1:])
        top = stack.argmax(axis=2)
        for b in range(stack.shape[0]):
            votes[np.arange(stack.shape[1]), top[b]] += present[b]
        n_present = present.sum(axis=0)  # (N,)
        seen = n_present > 0
        votes[seen] /= n_present[seen, None]
        mean = (stack * present[:, :, None]).sum(axis=0)
        mean[seen] /= n_present[seen, None]
        out = normalise_rows(votes + self.tie_weight * mean)
        out[~seen] = 1.0 / stack.shape[2]
        return out

    def params(self):
        return {"weights": [1.0] * self.n_branches, "tie_break": "mean probability"}


class WeightedMean(Fuser):
    """Weighted average with one weight per branch, searched on Val: a 0.1-step simplex grid for up to
    four branches, seeded random Dirichlet weights beyond that."""

    name = "weighted"

    def __init__(self, *, objective: str = "accuracy", step: float = 0.1, max_grid: int = 4,
                 samples: int = 2000, seed: int = 0) -> None:
        self.objective, self.step, self.max_grid, self.samples, self.seed = objective, step, max_grid, samples, seed
        self.weights: np.ndarray | None = None

    def fit(self, probs_list, labels):
        stack = _stack(probs_list)
        y = _check_fit(stack, labels)
        self.n_branches = stack.shape[0]
        cands = candidate_weights(self.n_branches, step=self.step, max_grid=self.max_grid,
                                  samples=self.samples, seed=self.seed)
        i, self.score_ = _search(stack, y, cands, self.objective)
        self.weights = cands[i]
        return self

    def predict(self, probs_list):
        return weighted_mean(self._check_predict(probs_list), self.weights)

    def params(self):
        return {"weights": [float(w) for w in self.weights], "objective": self.objective,
                "search": "grid" if self.n_branches <= self.max_grid else "subset grids + random"}


class PerClassWeights(Fuser):
    """One weight per branch and class (Kahou et al., EmotiW 2013): a branch can be trusted for Happy
    but not for Fear. Starts from the best global weights, then searches each class's column in turn
    (coordinate ascent, a few passes), keeping a change only when the Val objective improves (ties by
    log-loss)."""

    name = "per_class"

    def __init__(self, *, objective: str = "accuracy", step: float = 0.1, max_grid: int = 4,
                 samples: int = 500, seed: int = 0, passes: int = 2) -> None:
        self.objective, self.step, self.max_grid = objective, step, max_grid
        self.samples, self.seed, self.passes = samples, seed, passes
        self.weights: np.ndarray | None = None  # (B, 7)

    def fit(self, probs_list, labels):
        stack = _stack(probs_list)
        y = _check_fit(stack, labels)
        b = self.n_branches = stack.shape[0]
        start = WeightedMean(objective=self.objective, step=self.step, max_grid=self.max_grid,
                             samples=self.samples, seed=self.seed).fit(probs_list, y)
        w = np.repeat(start.weights[:, None], NUM_CLASSES, axis=1)
        cands = candidate_weights(b, step=self.step, max_grid=self.max_grid, samples=self.samples, seed=self.seed + 1,
                                  faces=False)
        for _ in range(self.passes):
            changed = False
            for c in range(NUM_CLASSES):
                trial = np.repeat(w[None], len(cands), axis=0)  # (W, B, 7)
                trial[:, :, c] = cands
                fused = normalise_rows(np.einsum("wbc,bnc->wnc", trial, stack))
                vals = objective_scores(fused, y, self.objective)
                losses = log_loss(fused, y)
                i = _best(vals, losses)
                cur = normalise_rows(np.einsum("bc,bnc->nc", w, stack))
                cur_v = objective_scores(cur, y, self.objective)
                cur_l = log_loss(cur, y)
                if vals[i] > cur_v + 1e-12 or (abs(vals[i] - cur_v) <= 1e-12 and losses[i] < cur_l - 1e-12):
                    w[:, c] = cands[i]
                    changed = True
            if not changed:
                break
        self.weights = w
        return self

    def predict(self, probs_list):
        return weighted_mean(self._check_predict(probs_list), self.weights)

    def params(self):
        return {"weights": self.weights.tolist(), "weights_shape": "branches x classes", "objective": self.objective}


class ExpWeighted(Fuser):
    """Branch weights proportional to exp(beta * Val accuracy of the branch) (Kim et al., EmotiW 2015):
    better branches count exponentially more. ``beta`` is picked on Val from a small grid."""

    name = "exp_weighted"
    BETAS = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)

    def __init__(self, *, objective: str = "accuracy", betas: Sequence[float] = BETAS) -> None:
        self.objective, self.betas = objective, tuple(betas)
        self.weights: np.ndarray | None = None

    def fit(self, probs_list, labels):
        stack = _stack(probs_list)
        y = _check_fit(stack, labels)
        self.n_branches = stack.shape[0]
        self.branch_scores = objective_scores(stack, y, self.objective)  # (B,)
        cands = np.array([self._weights(beta) for beta in self.betas])
        i, _ = _search(stack, y, cands, self.objective)
        self.beta = float(self.betas[i])
        self.weights = cands[i]
        return self

    def _weights(self, beta: float) -> np.ndarray:
        z = beta * (self.branch_scores - self.branch_scores.max())
        w = np.exp(z)
        return w / w.sum()

    def predict(self, probs_list):
        return weighted_mean(self._check_predict(probs_list), self.weights)

    def params(self):
        return {"weights": [float(w) for w in self.weights], "beta": self.beta,
                "branch_val_scores": [float(a) for a in self.branch_scores], "objective": self.objective}


class Stacker(Fuser):
    """Multinomial logistic regression on the concatenated branch log-probabilities: learns how far to
    trust each branch per class, and cross-branch interactions a weighted mean cannot express."""

    name = "stacker"

    def __init__(self, *, C: float = 1.0, features: str = "log", seed: int = 0) -> None:
        if features not in ("log", "prob"):
            raise MmferError(f"stacker: features={features!r}; expected 'log' or 'prob'")
        self.C, self.features, self.seed = C, features, seed

    def _raw(self, stack: np.ndarray) -> np.ndarray:
        # log-probabilities floored at 1e-4: near-zero scores otherwise dominate and slow the solver
        f = np.log(np.clip(stack, 1e-4, None)) if self.features == "log" else stack
        return np.concatenate(list(f), axis=1)

    def _x(self, stack: np.ndarray) -> np.ndarray:
        return (self._raw(stack) - self.mean_) / self.std_

    def fit(self, probs_list, labels):
        from sklearn.linear_model import LogisticRegression

        stack = _stack(probs_list)
        y = _check_fit(stack, labels)
        self.n_branches = stack.shape[0]
        # a clip no branch saw (every row uniform) says nothing: learning its label would teach the stacker to
        # name a class for "nobody saw it", which predict must leave uniform (counted wrong, filled by submit)
        seen = ~missing_rows(stack).all(axis=0)
        if not seen.any():
            raise MmferError("stacker: no Val clip was scored by any branch (every row is uniform); nothing to fit")
        stack, y = stack[:, seen], y[seen]
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            self.model = None
        else:
            raw = self._raw(stack)
            self.mean_, self.std_ = raw.mean(axis=0), np.maximum(raw.std(axis=0), 1e-6)
            self.model = LogisticRegression(C=self.C, max_iter=2000, random_state=self.seed)
            # one BLAS thread: these matrices are tiny and threads only add contention
            with warnings.catch_warnings(), threadpool_limits(1):
                warnings.simplefilter("ignore")
                self.model.fit(self._x(stack), y)
        return self

    def predict(self, probs_list):
        stack = self._check_predict(probs_list)
        out = np.full((stack.shape[1], NUM_CLASSES), EPS)
        if self.model is None:
            out[:, self.classes_[0]] = 1.0
        else:
            with threadpool_limits(1):
                out[:, self.model.classes_] = self.model.predict_proba(self._x(stack))
        out[missing_rows(stack).all(axis=0)] = 1.0  # no branch saw the clip: uniform, as every method leaves it
        return normalise_rows(out)

    def params(self):
        if self.model is None:
            return {"constant_class": int(self.classes_[0])}
        return {"coef": self.model.coef_.tolist(), "intercept": self.model.intercept_.tolist(),
                "classes": [int(c) for c in self.model.classes_], "features": self.features, "C": self.C,
                "feature_mean": self.mean_.tolist(), "feature_std": self.std_.tolist(),
                "feature_order": "branch-major: branch 0 classes 0..6, branch 1 classes 0..6, ..."}


# ---------------------------------------------------------------- calibration
def apply_temperature(probs: np.ndarray, t: float) -> np.ndarray:
    """Rescale probabilities as softmax(log p / T): T > 1 softens an over-confident branch."""
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), EPS, None)) / t
    logp -= logp.max(axis=-1, keepdims=True)
    e = np.exp(logp)
    return e / e.sum(axis=-1, keepdims=True)


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising Val negative log-likelihood (bounded search over log T in [-3, 3])."""
    from scipy.optimize import minimize_scalar

    y = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        p = apply_temperature(probs, math.exp(log_t))
        return float(-np.log(np.clip(p[rows, y], EPS, None)).mean())

    res = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded", options={"xatol": 1e-4})
    best = float(res.x)
    return math.exp(best) if nll(best) <= nll(0.0) else 1.0


class FusionModel:
    """Optional per-branch temperature calibration, then one fusion method; what ``fuse`` fits and saves."""

    def __init__(self, method: str = "weighted", *, calibrate: bool = False, objective: str = "accuracy",
                 seed: int = 0) -> None:
        self.fuser: Fuser = build_fuser(method, objective=objective, seed=seed)  # checks the method name
        if objective not in OBJECTIVES:
            raise MmferError(f"fusion: unknown objective {objective!r}; expected one of {', '.join(OBJECTIVES)}")
        self.method, self.calibrate, self.objective, self.seed = method, calibrate, objective, seed
        self.temperatures: list[float] | None = None

    def _calibrated(self, probs_list):
        if not self.calibrate:
            return [np.asarray(p, dtype=np.float64) for p in probs_list]
        return [apply_temperature(p, t) for p, t in zip(probs_list, self.temperatures)]

    def fit(self, probs_list: Sequence[np.ndarray], labels: np.ndarray) -> "FusionModel":
        labels = np.asarray(labels)
        n = len(probs_list[0]) if len(probs_list) else 0
        in_range = n == 0 or (labels.dtype.kind in "iu" and 0 <= labels.min() and labels.max() < NUM_CLASSES)
        if labels.dtype.kind not in "iu" or labels.shape != (n,) or not in_range:
            raise MmferError(f"fusion: labels must be {n} class indices 0-{NUM_CLASSES - 1} (mmfer.labels.index_of "
                             f"maps a name), got {labels.dtype} of shape {labels.shape}")
        if self.calibrate:
            self.temperatures = [fit_temperature(p, labels) for p in probs_list]
        self.fuser.fit(self._calibrated(probs_list), labels)
        return self

    def predict(self, probs_list: Sequence[np.ndarray]) -> np.ndarray:
        return self.fuser.predict(self._calibrated(probs_list))

    def params(self) -> dict[str, Any]:
        return {"temperatures": self.temperatures, **self.fuser.params()}


METHODS: dict[str, type[Fuser]] = {
    "majority": MajorityVote,
    "mean": MeanFusion,
    "weighted": WeightedMean,
    "per_class": PerClassWeights,
    "exp_weighted": ExpWeighted,
    "stacker": Stacker,
}


def build_fuser(method: str, *, objective: str = "accuracy", seed: int = 0) -> Fuser:
    """A fresh, unfitted fusion method by name."""
    if method not in METHODS:
        raise MmferError(f"fusion: unknown method {method!r}; expected one of {', '.join(METHODS)}")
    cls = METHODS[method]
    if cls in (WeightedMean, PerClassWeights):
        return cls(objective=objective, seed=seed)
    if cls is ExpWeighted:
        return cls(objective=objective)
    if cls is Stacker:
        return cls(seed=seed)
    return cls()
