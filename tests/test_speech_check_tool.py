"""tools/speech_check.py: each file's highest speech probability, and per group how many fall under the bar."""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import speech_check  # noqa: E402

pytestmark = pytest.mark.speech_check


def test_speech_check_tool_tells_speech_from_noise(tmp_path, cremad_audio, capsys) -> None:
    import soundfile as sf

    (tmp_path / "rooms").mkdir()
    (tmp_path / "voices").mkdir()
    sf.write(tmp_path / "rooms" / "noise.wav", np.random.default_rng(0).normal(0, 5e-5, 32000), 16000)
    (tmp_path / "rooms" / "broken.wav").write_bytes(b"not a sound")
    shutil.copy(cremad_audio[3], tmp_path / "voices" / "happy.mp3")
    assert speech_check.main([str(tmp_path), "--out", str(tmp_path / "check.csv")]) == 0
    rows = {Path(r["path"]).name: r for r in csv.DictReader((tmp_path / "check.csv").open())}
    assert set(rows) == {"noise.wav", "happy.mp3"}  # the unreadable file is named and left out
    assert float(rows["noise.wav"]["speech_probability"]) < 0.15 < float(rows["happy.mp3"]["speech_probability"])
    out = capsys.readouterr()
    assert "broken.wav: unreadable, left out" in out.err
    summary = {line.split()[0]: line.split()[1:] for line in out.out.splitlines()[1:]}
    assert summary["rooms"][0] == "1" and summary["rooms"][2] == "1"  # one file, under the bar
    assert summary["voices"][0] == "1" and summary["voices"][2] == "0"


def test_speech_check_tool_hears_no_speech_in_most_made_noise(tmp_path) -> None:
    assert speech_check.main(["--noise-set", "--out", str(tmp_path / "made.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "made.csv").open()))
    assert len(rows) == 21 and sum(float(r["speech_probability"]) < 0.15 for r in rows) >= 19
