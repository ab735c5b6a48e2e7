"""Writing clips into the cache: atomic, and nothing half-written left behind."""

from __future__ import annotations

import numpy as np
import pytest

import mmfer.cache as cache_mod
from mmfer.cache import ARRAYS, load_clip, write_clip


def _arrays(n: int) -> dict[str, np.ndarray]:
    return {
        "faces": np.full((n, 8, 8, 3), n, np.uint8),
        "landmarks": np.zeros((n, 68, 2), np.float32),
        "boxes": np.zeros((n, 5), np.float32),
        "mask": np.ones(n, bool),
        "audio": np.zeros(160, np.float32),
    }


def test_interrupted_write_leaves_the_old_clip_and_no_temporary_folder(tmp_path, monkeypatch):
    assert set(_arrays(1)) == set(ARRAYS)
    write_clip(tmp_path, "Train", "a", _arrays(2), {"frames": 2})
    real_save, calls = np.save, []

    def interrupted(path, array, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the second array
        real_save(path, array, **kwargs)

    monkeypatch.setattr(cache_mod.np, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_clip(tmp_path, "Train", "a", _arrays(5), {"frames": 5})
    monkeypatch.undo()
    assert [p.name for p in (tmp_path / "Train").iterdir()] == ["a"]  # no .tmp-* folder
    assert len(load_clip(tmp_path, "Train", "a").faces) == 2  # the old clip, whole
