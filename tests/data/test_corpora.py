"""RAVDESS / CREMA-D folders -> AFEW layout with speaker-disjoint splits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmfer.data.corpora import choose_val_actors, cremad_to_afew, ravdess_to_afew
from mmfer.data.index import index_afew
from mmfer.errors import MmferError

ROOT = Path(__file__).resolve().parents[2]


def _fake_ravdess(root: Path) -> Path:
    """Tiny fake RAVDESS tree: 3 actors x (neutral, calm, angry) in AV (01), video-only (02) and audio (03)."""
    for actor in ("01", "02", "03"):
        d = root / f"Actor_{actor}"
        d.mkdir(parents=True)
        for emo in ("01", "02", "05"):
            (d / f"01-01-{emo}-01-01-01-{actor}.mp4").write_bytes(b"av")
            (d / f"02-01-{emo}-01-01-01-{actor}.mp4").write_bytes(b"v")
            (d / f"03-01-{emo}-01-01-01-{actor}.wav").write_bytes(b"a")
    (root / "README.txt").write_text("not media")
    return root


def test_ravdess_split_is_speaker_disjoint_and_excludes_calm(tmp_path: Path):
    src = _fake_ravdess(tmp_path / "rav")
    out = tmp_path / "afew"
    s = ravdess_to_afew(src, out, val_actors=["3"])
    assert s.actors == {"Train": ["01", "02"], "Val": ["03"]}
    entries = index_afew(out, splits=None)
    # only AV (modality 01) videos; calm (02) excluded; audio files not placed without audio=True
    assert sorted((e.split, e.label, e.clip_id) for e in entries) == sorted(
        [("Train", lab, f"01-01-{c}-01-01-01-{a}") for a in ("01", "02") for c, lab in (("01", "Neutral"), ("05", "Angry"))]
        + [("Val", lab, f"01-01-{c}-01-01-01-03") for c, lab in (("01", "Neutral"), ("05", "Angry"))]
    )
    link = out / "Val" / "Angry" / "01-01-05-01-01-01-03.mp4"
    assert link.is_symlink() and link.resolve() == (src / "Actor_03" / "01-01-05-01-01-01-03.mp4").resolve()
    assert s.excluded == 6 + 6  # calm videos (AV and video-only) + non-calm video-only videos
    meta = json.loads((out / "corpus_split.json").read_text())
    assert meta["actors"]["Val"] == ["03"]
    # a link planted at the split file's name is replaced, never written through
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (out / "corpus_split.json").unlink()
    (out / "corpus_split.json").symlink_to(victim)
    ravdess_to_afew(src, out, val_actors=["3"])
    assert victim.read_text() == "keep" and not (out / "corpus_split.json").is_symlink()


def test_ravdess_audio_and_copy(tmp_path: Path):
    src = _fake_ravdess(tmp_path / "rav")
    out = tmp_path / "afew"
    s = ravdess_to_afew(src, out, val_fraction=0.34, seed=1, copy=True, audio=True)
    assert len(s.actors["Val"]) == 1 and not set(s.actors["Val"]) & set(s.actors["Train"])
    wavs = sorted(out.rglob("*.wav"))
    assert len(wavs) == 6 and not any(p.is_symlink() for p in out.rglob("*.*"))
    # re-running into the same folder is a no-op, not an error
    assert ravdess_to_afew(src, out, val_fraction=0.34, seed=1, copy=True, audio=True).total == s.total


def test_cremad_fixtures_by_symlink(cremad_dir: Path, tmp_path: Path):
    out = tmp_path / "afew"
    s = cremad_to_afew(cremad_dir, out, val_actors=["1002"], audio=True)
    assert s.actors == {"Train": ["1001"], "Val": ["1002"]}
    entries = index_afew(out, splits=None)  # the flv videos only: 1001 -> Train
    assert [(e.split, e.label) for e in entries] == [
        ("Train", "Angry"), ("Train", "Disgust"), ("Train", "Fear"), ("Train", "Happy"), ("Train", "Neutral"), ("Train", "Sad")
    ]
    assert sorted(p.name for p in (out / "Val").rglob("*.mp3")) == sorted(p.name for p in cremad_dir.glob("*.mp3"))
    assert all(e.path.is_symlink() for e in entries)


def test_conversion_errors(cremad_dir: Path, tmp_path: Path):
    with pytest.raises(MmferError, match="9999"):
        cremad_to_afew(cremad_dir, tmp_path / "o1", val_actors=["9999"])
    with pytest.raises(MmferError, match="no cremad media"):
        cremad_to_afew(tmp_path, tmp_path / "o2")
    with pytest.raises(MmferError, match="at least one"):
        choose_val_actors(["1", "2"], val_actors=["1", "2"])
    (tmp_path / "o3" / "Train" / "Angry").mkdir(parents=True)
    (tmp_path / "o3" / "Train" / "Angry" / "1001_DFA_ANG_XX.flv").write_bytes(b"other")
    with pytest.raises(MmferError, match="already exists"):
        cremad_to_afew(cremad_dir, tmp_path / "o3", val_actors=["1002"], audio=True)


def test_choose_val_actors_is_seeded_and_disjoint():
    actors = [str(1000 + i) for i in range(20)]
    a = choose_val_actors(actors, val_fraction=0.2, seed=3)
    assert a == choose_val_actors(actors, val_fraction=0.2, seed=3) and len(a) == 4
    assert choose_val_actors(actors, val_fraction=0.2, seed=4) != a
    assert choose_val_actors(["01", "02"], val_actors=["2"]) == {"02"}


def test_one_actor_and_a_val_fraction_is_said_not_a_silent_empty_val(caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="mmfer"):
        assert choose_val_actors(["1001"], val_fraction=0.2) == set()
    assert "--val-fraction 0.2 of 1 actor(s): Val is empty" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mmfer"):
        assert choose_val_actors(["1001"], val_fraction=0.0) == set()  # asked for none: nothing to say
    assert not caplog.records


def test_tool_script(cremad_dir: Path, tmp_path: Path):
    out = tmp_path / "afew"
    r = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "cremad_to_afew.py"), str(cremad_dir), str(out), "--val-actors", "1002", "--audio"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 0, r.stderr
    assert "Train: 6" in r.stdout and (out / "Train" / "Sad" / "1001_DFA_SAD_XX.flv").exists()
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "ravdess_to_afew.py"), str(cremad_dir), str(tmp_path / "x")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no ravdess media" in r.stderr


def test_the_converters_take_out_as_every_command_does(tmp_path, capsys):
    """OUT as a positional argument, as before, or --out, as every other mmfer command and tool; not both."""
    from mmfer.data.corpora import run_tool

    src = tmp_path / "empty_corpus"
    src.mkdir()
    calls = []

    def convert(s, o, **kw):
        calls.append((s, o))
        raise __import__("mmfer.errors", fromlist=["MmferError"]).MmferError("stop here")

    assert run_tool(convert, [str(src), str(tmp_path / "a")], "t") == 2
    assert run_tool(convert, [str(src), "--out", str(tmp_path / "b")], "t") == 2
    assert [o for _, o in calls] == [str(tmp_path / "a"), str(tmp_path / "b")]
    with pytest.raises(SystemExit):
        run_tool(convert, [str(src), str(tmp_path / "a"), "--out", str(tmp_path / "b")], "t")
