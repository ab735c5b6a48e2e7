"""Reproducible randomness of a run: the global seeds and their states (saved in ``last.pt`` so a resumed run
continues exactly), and samplers whose order depends only on (seed, epoch)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from mmfer.labels import NUM_CLASSES


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Global RNG states as tensors and plain types (loadable with weights_only=True)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class EpochSampler(Sampler[int]):
    """Shuffles with a generator seeded by (seed, epoch): the order depends only on the epoch (exact resume)."""

    def __init__(self, n: int, *, seed: int, shuffle: bool = True):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.n))
        return iter(np.random.default_rng([self.seed, self.epoch, 104729]).permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n


class BalancedEpochSampler(EpochSampler):
    """``n`` draws with replacement by the probabilities ``p`` (``data.balance``), seeded by (seed, epoch)."""

    def __init__(self, p: np.ndarray, *, seed: int):
        super().__init__(len(p), seed=seed)
        self.p = np.asarray(p, dtype=np.float64) / np.sum(p)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch, 104729])
        return iter(rng.choice(self.n, size=self.n, replace=True, p=self.p).tolist())

    def expected_class_counts(self, labels: list[int]) -> np.ndarray:
        return self.n * np.bincount(np.asarray(labels, dtype=np.int64), weights=self.p, minlength=NUM_CLASSES)
