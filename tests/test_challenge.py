"""challenge/run_afew.sh checks every setting before its long steps: on real AFEW a typo found after
preprocessing and training costs hours."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("setting,said", [
    ({"BRANCHES": "landmark_brnn audio_cn"}, "BRANCHES: no config configs/audio_cn.yaml for branch 'audio_cn'"),
    ({"BRANCHES": "landmark_brnn face_frame_fer2013"}, "BRANCHES: face_frame_fer2013 read(s) face images, not the "
                                                        "clips' cache"),  # found after preprocessing before
    ({"FUSION": "weigthed"}, "FUSION 'weigthed': expected one of: majority mean weighted"),
    ({"FUSION_FOLDS": "five"}, "FUSION_FOLDS 'five': expected a whole number"),
    ({"EPOCHS": "-1"}, "EPOCHS '-1': expected a whole number"),
    ({"EPOCHS": "0"}, "EPOCHS 0: at least 1"),
    ({"FUSION_FOLDS": "01"}, "FUSION_FOLDS 01: at least 2"),  # read as ten-based, not octal
])
def test_a_bad_setting_stops_the_script_before_any_work(tmp_path, setting, said):
    (tmp_path / "AFEW").mkdir()
    env = {**os.environ, **setting}
    done = subprocess.run(["bash", str(REPO / "challenge" / "run_afew.sh"), str(tmp_path / "AFEW"),
                           str(tmp_path / "work")], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and said in done.stderr, done.stderr
    assert not (tmp_path / "work").exists()  # nothing started
