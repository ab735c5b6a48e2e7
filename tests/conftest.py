"""Shared fixtures: the committed CREMA-D clips and a seeded RNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ASSETS = Path(__file__).parent / "assets"
CREMAD = ASSETS / "cremad"


@pytest.fixture(scope="session")
def cremad_dir() -> Path:
    return CREMAD


@pytest.fixture(scope="session")
def cremad_videos() -> list[Path]:
    """The six real audio-video clips of CREMA-D actor 1001 (480x360, ~2.2 s each)."""
    videos = sorted(CREMAD.glob("*.flv"))
    assert len(videos) == 6, f"expected 6 CREMA-D fixture videos in {CREMAD}"
    return videos


@pytest.fixture(scope="session")
def cremad_audio() -> list[Path]:
    """Six real audio-only clips (mp3) of CREMA-D actor 1002."""
    return sorted(CREMAD.glob("*.mp3"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
