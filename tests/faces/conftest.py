"""Face-test fixtures: decoded frames of two CREMA-D clips and their tracks, computed once per session."""

from __future__ import annotations

import numpy as np
import pytest

from mmfer.data.video import read_frames


@pytest.fixture(scope="session")
def dlib_backend():
    from mmfer.faces.backends import get_backend

    return get_backend("dlib")


@pytest.fixture(scope="session")
def clip_frames(cremad_videos) -> list[np.ndarray]:
    """Every 3rd frame (about 10 fps) of two real clips: enough motion, little runtime."""
    return [read_frames(p, fps=10)[0] for p in cremad_videos[:2]]


@pytest.fixture(scope="session")
def clip_tracks(clip_frames, dlib_backend):
    from mmfer.faces.track import FaceTracker

    return [FaceTracker(dlib_backend).process(f) for f in clip_frames]
