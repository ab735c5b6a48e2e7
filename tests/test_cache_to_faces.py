"""tools/cache_to_faces.py: a cache's faces as a face-image tree, framed as predict frames a video's faces."""

from __future__ import annotations

import cv2
import numpy as np

from mmfer.data.cache import load_clip, split_records
from mmfer.faces.crops import frame_faces
from synthetic import make_synthetic_cache
from tool_module import load_tool


def _tool():
    return load_tool("cache_to_faces")


def test_each_labelled_clip_gives_its_framed_faces_in_its_own_split(tmp_path, capsys, caplog):
    cache = make_synthetic_cache(tmp_path / "cache", modality="faces", per_class={"Train": 1, "Val": 1},
                                 crop_size=48)
    tool = _tool()
    assert tool.main([str(cache), "--out", str(tmp_path / "faces"), "--per-clip", "3"]) == 0
    assert "crop_size 48 (the default model: 112)" in caplog.text and "max_frames" not in caplog.text  # said
    for split in ("Train", "Val"):
        for rec in split_records(cache, split):
            files = sorted((tmp_path / "faces" / split).glob(f"*/{rec.clip_id}_*.png"))
            if rec.status != "ok" or not rec.label or not load_clip(cache, split, rec.clip_id).mask.any():
                assert not files  # a failed, unlabelled or faceless clip gives nothing
                continue
            clip = load_clip(cache, split, rec.clip_id)
            assert len(files) == min(3, int(clip.mask.sum())) and {f.parent.name for f in files} == {rec.label}
            for f in files:  # the very crop predict shows the face models of that frame
                i = int(f.stem.rsplit("_", 1)[1])
                assert clip.mask[i]
                img = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
                assert np.array_equal(img, frame_faces(np.asarray(clip.faces[i]), "fer2013"))
    assert "left out" in capsys.readouterr().out  # Val's failed and faceless extras are said
    from mmfer.errors import run_tool_main

    assert run_tool_main(tool.main, [str(cache), "--out", str(tmp_path / "faces")], prog="t") == 2  # not over it
    assert run_tool_main(tool.main, [str(cache), "--out", str(tmp_path / "f2"), "--splits", "Dev"], prog="t") == 2
    # without Val, training would hold out single frames of clips it trains on: refused, before anything is written
    assert run_tool_main(tool.main, [str(cache), "--out", str(tmp_path / "f3"), "--splits", "Train"], prog="t") == 2
    assert "no Val split" in capsys.readouterr().err and not (tmp_path / "f3").exists()
