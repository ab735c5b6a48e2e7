"""tools/make_heldout_folder.py: the held-out FER2013 faces, as the training runs hold them out, as a folder."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

from mmfer.data.sources import media_folder_records
from mmfer.data.splits import holdout_seed, holdout_split
from mmfer.engine.checkpoint import run_holdout
from mmfer.engine.config import load_train_config
from mmfer.labels import EMOTIONS

TOOL = Path(__file__).resolve().parents[1] / "tools" / "make_heldout_folder.py"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_the_folder_holds_exactly_the_faces_training_holds_out(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("make_heldout_folder", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    for i, emotion in enumerate(EMOTIONS):
        d = tmp_path / "fer" / "Train" / emotion
        d.mkdir(parents=True)
        for k in range(10 + 3 * i):
            (d / f"Training_{i}{k:03d}.jpg").write_bytes(b"jpg")  # the split looks at names only
    assert tool.main([str(tmp_path / "fer"), "--out", str(tmp_path / "held")]) == 0
    records = media_folder_records(tmp_path / "fer", "Train", "face_image")
    _, held = holdout_split(records, fraction=0.1, seed=0)
    for recipe in ("face_frame_fer2013.yaml", "face_frame_video.yaml", "face_frame_video_distill_w40.yaml"):
        cfg = load_train_config(CONFIGS / recipe)  # the shipped face models hold out these faces, every seed
        for seed in (0, 1):
            cfg = dataclasses.replace(cfg, seed=seed)
            trained_on, shown = run_holdout(records, fraction=cfg.data.holdout_fraction, seed=holdout_seed(cfg))
            assert [r.path for r in shown] == [r.path for r in held], (recipe, seed)
    written = sorted(p.relative_to(tmp_path / "held").as_posix() for p in (tmp_path / "held").rglob("*.jpg"))
    assert written == sorted(f"{r.label}/{Path(r.path).name}" for r in held) and len(written) >= len(EMOTIONS)
    from mmfer.errors import run_tool_main

    assert run_tool_main(tool.main, [str(tmp_path / "fer"), "--out", str(tmp_path / "held")], prog="t") == 2  # not over
    # an earlier folder
    assert "not empty" in capsys.readouterr().err
