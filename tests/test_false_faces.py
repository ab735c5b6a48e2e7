"""tools/false_faces.py: face-free pictures made into short videos through predict's video path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmfer.errors import MmferError
from tool_module import load_tool


def _tool():
    return load_tool("false_faces")


def test_windows_are_video_frames_half_of_them_degraded():
    tool = _tool()
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (100, 150, 3), dtype=np.uint8)  # smaller than a frame: reflected to fill it
    wins = tool.windows(picture, 4, rng)
    assert [w.shape for w, _ in wins] == [(240, 320, 3)] * 4 and [d for _, d in wins] == [False, True, False, True]


def test_flat_pictures_give_no_face_and_an_empty_folder_is_named(tmp_path):
    import cv2

    tool = _tool()
    pics = tmp_path / "pics"
    pics.mkdir()
    cv2.imwrite(str(pics / "grey.png"), np.full((300, 400, 3), 128, np.uint8))
    (pics / "broken.png").write_bytes(b"not a png")  # reported and left out
    assert tool.main(["--images", str(pics), "--windows", "2", "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "false_faces.json").read_text())
    assert summary["videos"] == 2 and summary["pictures"] == 1 and summary["videos_with_a_face"] == 0
    rows = (tmp_path / "out" / "false_faces.csv").read_text().splitlines()
    assert rows[0] == "picture,window,degraded,face_ratio,predicted" and len(rows) == 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(MmferError, match="empty: no pictures"):
        tool.main(["--images", str(tmp_path / "empty"), "--out", str(tmp_path / "o2")])
    with pytest.raises(MmferError, match="missing: not a folder"):
        tool.main(["--images", str(tmp_path / "missing"), "--out", str(tmp_path / "o3")])


def test_frame_scale_enlarges_the_windows(tmp_path, monkeypatch):
    """--frame-scale 2 makes 640x480 videos of the same 320x240 windows (footage larger than the detector's 320 px)."""
    import cv2

    tool = _tool()
    pics = tmp_path / "pics"
    pics.mkdir()
    cv2.imwrite(str(pics / "grey.png"), np.full((300, 400, 3), 128, np.uint8))
    shapes, write = [], tool.write_video
    monkeypatch.setattr(tool, "write_video", lambda path, frame, **k: shapes.append(frame.shape) or write(path, frame, **k))
    assert tool.main(["--images", str(pics), "--windows", "2", "--frame-scale", "2", "--out", str(tmp_path / "out")]) == 0
    assert shapes == [(480, 640, 3)] * 2
    assert json.loads((tmp_path / "out" / "false_faces.json").read_text())["frame_scale"] == 2.0
