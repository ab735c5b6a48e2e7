"""Fixtures: synthetic caches (class in one modality), one torch thread while training."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthetic import make_synthetic_cache


@pytest.fixture(scope="session")
def synth_cache(tmp_path_factory):
    """modality -> path of a synthetic cache (made once per session)."""
    made: dict[str, Path] = {}

    def get(modality: str) -> Path:
        if modality not in made:
            made[modality] = make_synthetic_cache(tmp_path_factory.mktemp(f"cache_{modality}"), modality=modality)
        return made[modality]

    return get


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models train faster on one thread (no spin-waiting against other processes); restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
