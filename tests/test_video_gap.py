"""tools/video_gap.py: the frames its held-out faces are shown in, one kind of degradation at a time."""

from __future__ import annotations

import numpy as np
import pytest

from tool_module import load_tool


def _tool():
    return load_tool("video_gap")


def _face(seed: int = 0) -> np.ndarray:
    """A textured 48x48 RGB 'photo' in mid greys, far from the frame's fill of 128 at every pixel."""
    rng = np.random.default_rng(seed)
    grey = rng.integers(0, 100, (48, 48), dtype=np.uint8) + np.where(rng.random((48, 48)) < 0.5, 0, 156).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def test_settings_keep_the_clean_and_degraded_pairs_and_add_one_per_degradation():
    tool = _tool()
    assert tool.settings([64, 128], None) == [("64px clean", 64, False, 23), ("64px degraded", 64, True, 35),
                                              ("128px clean", 128, False, 23), ("128px degraded", 128, True, 35)]
    each = tool.settings([128], ["clean", "h264_crf40", "blur"])
    assert [(n, c) for n, _, _, c in each] == [("128px clean", 23), ("128px h264_crf40", 40), ("128px blur", 23)]


def test_degraded_frames_are_made_as_before_and_clean_is_the_empty_degradation():
    tool = _tool()
    from mmfer.data.features import video_degrade
    from mmfer.faces.crops import place_face

    face = _face()
    rng = np.random.default_rng(7)
    x, y = int(rng.integers(0, 320 - 96 + 1)), int(rng.integers(0, 240 - 96 + 1))
    frame, _ = place_face(face, size=96, frame_hw=(240, 320), at=(x, y), background="constant", fill=128)
    before = video_degrade(frame, rng, blur=1.2 * 96 / 100, rescale=0.6)
    assert np.array_equal(tool.make_frame(face, 96, True, np.random.default_rng(7)), before)
    assert np.array_equal(tool.make_frame(face, 96, tool.DEGRADATIONS["clean"], np.random.default_rng(7)),
                          tool.make_frame(face, 96, False, np.random.default_rng(7)))


def test_each_degradation_changes_the_frame_as_it_says():
    tool = _tool()
    face = _face()
    frames = {name: tool.make_frame(face, 128, spec, np.random.default_rng(3)) for name, spec in tool.DEGRADATIONS.items()}
    clean = frames["clean"].astype(int)
    rows, cols = np.nonzero((clean != 128).any(axis=2))
    top, left = rows.min(), cols.min()
    for name, frame in frames.items():
        assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8, name
        if name not in ("clean", "h264_crf40"):  # the H.264 rate is applied when the video is written
            assert not np.array_equal(frame, frames["clean"]), name
    cover = frames["mouth_covered"][top:top + 128, left:left + 128]
    assert (cover[int(128 * 0.7) + 8:] == 128).all() and (cover[: int(128 * 0.7) - 8] != 128).any()  # cubic resize: edge
    cut = frames["cut"]
    assert (cut[:, 0] != 128).any() and cut[top:top + 128, 102:].max() == cut[top:top + 128, 102:].min() == 128
    wb = frames["white_balance"].astype(float)
    assert wb[..., 0].mean() > clean[..., 0].mean() > wb[..., 2].mean()
    assert frames["dark"].mean() < clean.mean() < frames["bright"].mean()
    assert np.abs(np.diff(frames["blur"].astype(int), axis=1)).mean() < np.abs(np.diff(clean, axis=1)).mean()


def test_an_unknown_degradation_is_refused_by_name(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        _tool().main(["--degradations", "rain", "blur", "--out", str(tmp_path)])
    assert e.value.code == 2 and "unknown --degradations rain" in capsys.readouterr().err
