"""Shared fixtures: the committed CREMA-D clips, a seeded RNG, and synthetic sound taken as speech."""

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


@pytest.fixture(autouse=True)
def synthetic_sound_is_speech(request, monkeypatch):
    """Most tests stand tones in noise in for a voice (the synthetic caches and videos), which the speech check
    of predict (mmfer.inference.speech) rightly hears as no speech: there it counts as speech, so those tests
    test what they are about. Tests of the check itself are marked ``speech_check`` and hear the real one."""
    if request.node.get_closest_marker("speech_check") is None:
        monkeypatch.setattr("mmfer.inference.speech.holds_speech", lambda audio, sample_rate, **where: True)
