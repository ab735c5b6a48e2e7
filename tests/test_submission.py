"""EmotiW zip: round trip, refusal to write incomplete submissions, and every defect the checker knows."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from mmfer.data.cache import ClipRecord, append_manifest
from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS
from mmfer.scores import write_scores
from mmfer.submission import check_submission, class_prior, index_clip_ids, write_submission
from mmfer.scores import read_scores

IDS = [f"{i:06d}" for i in range(12)]


@pytest.fixture
def test_dir(tmp_path):
    d = tmp_path / "Test"
    d.mkdir()
    for cid in IDS:
        (d / f"{cid}.avi").write_bytes(b"")  # indexing looks at names only
    return d


@pytest.fixture
def fused(tmp_path):
    rng = np.random.default_rng(0)
    return write_scores(tmp_path / "fuse" / "fused_Test.csv", IDS, [None] * len(IDS), rng.dirichlet(np.ones(7), len(IDS)))


def _zip(path, files: dict[str, str]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


def test_round_trip(tmp_path, test_dir, fused):
    rep = write_submission(fused, index=test_dir, out=tmp_path / "team.zip")
    assert rep["problems"] == [] and rep["clips"] == 12 and rep["filled"] == {}
    expected = read_scores(fused).predictions
    with zipfile.ZipFile(tmp_path / "team.zip") as zf:
        assert sorted(zf.namelist()) == [f"{c}.txt" for c in IDS]
        assert [zf.read(f"{c}.txt").decode() for c in IDS] == expected
    assert check_submission(tmp_path / "team.zip", index=test_dir) == []
    # an AFEW root works as the index too (its Test/ folder)
    assert check_submission(tmp_path / "team.zip", index=test_dir.parent) == []
    assert sum(rep["prediction_counts"].values()) == 12
    # a name without an extension gets .zip (it was a zip without one); another extension is refused
    rep = write_submission(fused, index=test_dir, out=tmp_path / "team_b")
    assert rep["zip"] == str(tmp_path / "team_b.zip") and check_submission(tmp_path / "team_b.zip", index=test_dir) == []
    with pytest.raises(MmferError, match=r"--out .*team\.tar: expected a file ending in \.zip"):
        write_submission(fused, index=test_dir, out=tmp_path / "team.tar")


def test_the_same_labels_make_the_same_zip_byte_for_byte(tmp_path, test_dir, fused, monkeypatch):
    """Entries were dated by the run's clock and time zone, so two runs' zips of the same labels differed; now they
    are dated 1980-01-01 (or SOURCE_DATE_EPOCH), rw-r--r--, and a checksum compares two submissions."""
    import time

    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    write_submission(fused, index=test_dir, out=tmp_path / "a.zip")
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    monkeypatch.setattr(time, "time", lambda: 2e9)  # another day as well
    try:
        write_submission(fused, index=test_dir, out=tmp_path / "b.zip")
    finally:
        monkeypatch.undo()
        time.tzset()
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert {(i.date_time, i.external_attr >> 16) for i in zf.infolist()} == {((1980, 1, 1, 0, 0, 0), 0o644)}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")  # 2026-01-01 00:00 UTC
    write_submission(fused, index=test_dir, out=tmp_path / "c.zip")
    with zipfile.ZipFile(tmp_path / "c.zip") as zf:
        assert {i.date_time for i in zf.infolist()} == {(2026, 1, 1, 0, 0, 0)}
    assert check_submission(tmp_path / "c.zip", index=test_dir) == []
    # past what a zip can date, the last time it can; not a number of seconds: said, and 1980 as without it
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "9" * 12)
    write_submission(fused, index=test_dir, out=tmp_path / "d.zip")
    with zipfile.ZipFile(tmp_path / "d.zip") as zf:
        assert {i.date_time for i in zf.infolist()} == {(2107, 12, 31, 23, 59, 58)}  # (zip times are even seconds)
    for bad in ("1.5e9", "-5", "\u00b2", "9" * 30):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", bad)
        write_submission(fused, index=test_dir, out=tmp_path / "e.zip")
        assert (tmp_path / "e.zip").read_bytes() == (tmp_path / "a.zip").read_bytes()


def test_refuses_incomplete_then_fills_from_prior_or_scores(tmp_path, test_dir, fused):
    t = read_scores(fused)
    partial = write_scores(tmp_path / "partial.csv", t.clip_ids[2:] + ["stray"], [None] * 11,
                           np.vstack([t.probs[2:], np.eye(7)[:1]]))
    with pytest.raises(MmferError, match=r"no prediction for 2 of 12.*000000, 000001.*Refusing"):
        write_submission(partial, index=test_dir, out=tmp_path / "a.zip")
    assert not (tmp_path / "a.zip").exists()
    prior = np.array([0.1, 0.0, 0.0, 0.5, 0.3, 0.1, 0.0])
    rep = write_submission(partial, index=test_dir, out=tmp_path / "a.zip", fill_missing=prior)
    assert set(rep["filled"]) == {"000000", "000001"} and "prior" in rep["filled"]["000000"]
    assert rep["left_out_not_in_index"] == ["stray"]
    assert rep["problems"] == []
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert zf.read("000000.txt").decode() == "Happy"
        assert "stray.txt" not in zf.namelist()
    audio = write_scores(tmp_path / "audio_Test.csv", IDS, [None] * 12, np.eye(7)[[5] * 12])
    rep = write_submission(partial, index=test_dir, out=tmp_path / "b.zip", fill_missing=audio)
    with zipfile.ZipFile(tmp_path / "b.zip") as zf:
        assert zf.read("000001.txt").decode() == "Sad"
    assert json.dumps(rep)


def test_manifest_index_reports_failed_clips(tmp_path, fused):
    cache = tmp_path / "cache"
    for i, cid in enumerate(IDS):
        append_manifest(cache, ClipRecord(cid, "Test", None, f"/x/{cid}.avi", "failed" if i == 3 else "ok",
                                          reason="no faces" if i == 3 else ""))
    append_manifest(cache, ClipRecord("valclip", "Val", "Happy", "/x/v.avi", "ok"))
    ids, notes = index_clip_ids(cache)
    assert ids == IDS and notes == {"000003": "preprocessing failed: no faces"}
    rep = write_submission(fused, index=cache / "manifest.jsonl", out=tmp_path / "c.zip")
    assert rep["failed_preprocessing"] == ["000003"] and rep["problems"] == []
    from mmfer.submission import format_submit_report

    line = next(x for x in format_submit_report(rep).splitlines() if "failed preprocessing" in x)
    assert "000003" in line and "1 predicted from what the branches had, 0 filled" in line, line
    rep["filled"] = {"000003": "class prior"}  # the summary counts a filled clip as filled, not as predicted
    line = next(x for x in format_submit_report(rep).splitlines() if "failed preprocessing" in x)
    assert "0 predicted from what the branches had, 1 filled as listed above" in line, line


def test_checker_catches_each_defect(tmp_path, test_dir):
    good = {f"{c}.txt": "Neutral\n" for c in IDS}  # a trailing newline is accepted
    assert check_submission(_zip(tmp_path / "ok.zip", good), index=test_dir) == []

    missing = dict(good)
    del missing["000004.txt"]
    (p,) = check_submission(_zip(tmp_path / "m.zip", missing), index=test_dir)
    assert "missing 1 of 12" in p and "000004" in p

    extra = {**good, "999999.txt": "Happy"}
    (p,) = check_submission(_zip(tmp_path / "e.zip", extra), index=test_dir)
    assert "extra" in p and "999999" in p

    bad = {**good, "000002.txt": "happy", "000003.txt": "Joyful"}
    probs = check_submission(_zip(tmp_path / "b.zip", bad), index=test_dir)
    assert len(probs) == 2 and "write exactly 'Happy'" in probs[0] and "'Joyful'" in probs[1]

    nested = {f"team/{c}.txt": "Happy" for c in IDS}
    probs = check_submission(_zip(tmp_path / "n.zip", nested), index=test_dir)
    assert probs[0].startswith("bad layout") and any("missing 12" in p for p in probs)

    stray = {**good, "notes.md": "hello"}
    (p,) = check_submission(_zip(tmp_path / "s.zip", stray), index=test_dir)
    assert "unexpected file" in p

    (tmp_path / "notzip.zip").write_text("just text")
    assert check_submission(tmp_path / "notzip.zip", index=test_dir) == [f"{tmp_path / 'notzip.zip'}: not a zip archive"]
    with pytest.raises(MmferError, match="absent.zip: file not found"):
        check_submission(tmp_path / "absent.zip", index=test_dir)


def test_class_prior(fused):
    t = read_scores(fused)
    assert class_prior(t) == pytest.approx(t.probs.mean(0))
    t.labels = ["Happy"] * 10 + ["Sad"] * 2
    assert class_prior(t)[EMOTIONS.index("Happy")] == pytest.approx(10 / 12)


def test_uniform_fused_rows_use_the_fallback(tmp_path, test_dir, fused):
    t = read_scores(fused)
    probs = t.probs.copy()
    probs[5] = 1 / 7  # no branch saw clip 000005
    flat = write_scores(tmp_path / "flat.csv", t.clip_ids, t.labels, probs)
    # a uniform row is a gap: its argmax would be Angry by position alone, so it is refused like a missing one
    with pytest.raises(MmferError, match="no prediction for 1 of 12 .* 000005 .uniform scores"):
        write_submission(flat, index=test_dir, out=tmp_path / "u.zip")
    assert not (tmp_path / "u.zip").exists()
    prior = np.eye(7)[EMOTIONS.index("Neutral")]
    rep = write_submission(flat, index=test_dir, out=tmp_path / "u.zip", fill_missing=prior)
    assert list(rep["filled"]) == ["000005"] and "uniform" in rep["filled"]["000005"]
    with zipfile.ZipFile(tmp_path / "u.zip") as zf:
        assert zf.read("000005.txt").decode() == "Neutral"
    # the fallback branch saw nothing of that clip either: its uniform row would name Angry by position alone,
    # so the class prior (here the Test scores' mean, no Val beside them) fills it, and the report says why
    audio = write_scores(tmp_path / "audio_Test.csv", t.clip_ids, t.labels, probs)
    rep = write_submission(flat, index=test_dir, out=tmp_path / "a.zip", fill_missing=audio)
    expected = EMOTIONS[int(probs.mean(axis=0).argmax())]
    assert expected != "Angry" and "is uniform for it too" in rep["filled"]["000005"]
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert zf.read("000005.txt").decode() == expected
    # that prior is for uniform fallback rows only: a later clip the fallback has no row for is still refused
    partial = write_scores(tmp_path / "partial.csv", t.clip_ids[:-1], t.labels[:-1], probs[:-1])
    audio_part = write_scores(tmp_path / "audio_part.csv", t.clip_ids[:-1], t.labels[:-1], probs[:-1])
    with pytest.raises(MmferError, match=f"no row for test clip {t.clip_ids[-1]} either"):
        write_submission(partial, index=test_dir, out=tmp_path / "b.zip", fill_missing=audio_part)


def test_scores_of_other_clips_are_refused_even_with_a_fill(tmp_path, test_dir, fused):
    """Val scores given for Test: no clip of the index has a row, and filling every clip from the prior would make
    a zip that checks OK and says nothing; the error says what the file holds."""
    val = write_scores(tmp_path / "fuse" / "fused_Val.csv", ["v1", "v2"], ["Fear", "Sad"], np.eye(7)[[2, 5]])
    for fill in (None, "prior"):
        with pytest.raises(MmferError, match="no prediction for any of the 12 .*2 with a true label: Val or Train"):
            write_submission(val, index=test_dir, out=tmp_path / "v.zip", fill_missing=fill)
    assert not (tmp_path / "v.zip").exists()
    flat = write_scores(tmp_path / "flat.csv", IDS, [None] * 12, np.full((12, 7), 1 / 7))
    with pytest.raises(MmferError, match="uniform rows for all 12"):
        write_submission(flat, index=test_dir, out=tmp_path / "v.zip", fill_missing="prior")
    # another system's ids kept the extension: said, since ids are compared exactly
    named = write_scores(tmp_path / "ext.csv", [f"{c}.avi" for c in IDS], [None] * 12,
                         np.eye(7)[[i % 7 for i in range(12)]])
    with pytest.raises(MmferError, match=rf"12 score row\(s\) name them up to an extension or letter case "
                                         rf"\('{IDS[0]}.avi' for '{IDS[0]}'"):
        write_submission(named, index=test_dir, out=tmp_path / "v.zip")


def test_prior_fill_uses_val_labels_beside_the_test_scores(tmp_path, test_dir, fused):
    t = read_scores(fused)
    partial = write_scores(tmp_path / "fuse2" / "fused_Test.csv", t.clip_ids[1:], [None] * 11, t.probs[1:])
    # Val is mostly Fear: the missing Test clip must be filled with Fear, whatever the Test scores say.
    write_scores(tmp_path / "fuse2" / "fused_Val.csv", ["v1", "v2", "v3"], ["Fear", "Fear", "Sad"], np.eye(7)[[0, 0, 0]])
    rep = write_submission(partial, index=test_dir, out=tmp_path / "p.zip", fill_missing="prior")
    assert set(rep["filled"]) == {"000000"}
    with zipfile.ZipFile(tmp_path / "p.zip") as zf:
        assert zf.read("000000.txt").decode() == "Fear"


# ---------------------------------------------------------------- hostile input
def test_unsafe_clip_ids_never_reach_a_zip(tmp_path):
    """Ids naming '../x', '/abs', 'a\\b' or '..' never become zip entries, and no zip is left behind."""
    from mmfer.submission import write_zip

    for bad in ("../x", "/abs/x", "..\\..\\x", "..", "a\x00b", "=cmd"):
        out = tmp_path / "team.zip"
        with pytest.raises(MmferError, match="clip id"):
            write_zip(out, {"ok": "Happy", bad: "Sad"}, where="test")
        assert not out.exists() and not list(tmp_path.glob(".team.zip*"))
    # an index whose manifest was edited to hold such an id: the record is not read, the zip stays clean
    index = tmp_path / "idx"
    append_manifest(index, ClipRecord(clip_id="ok", split="Test", label=None, path="ok.avi", status="ok"))
    with open(index / "manifest.jsonl", "a") as f:
        f.write(json.dumps({"clip_id": "../x", "split": "Test", "label": None, "path": "x.avi", "status": "ok"}) + "\n")
    scores = write_scores(tmp_path / "s.csv", ["ok", "../x"], [None, None], np.eye(7)[[3, 3]])
    write_submission(scores, index=index, out=tmp_path / "team.zip")
    assert zipfile.ZipFile(tmp_path / "team.zip").namelist() == ["ok.txt"]
    # a CSV list naming such an id explicitly is refused by the index
    (tmp_path / "list.csv").write_text("path,label,clip_id\nx.avi,,../x\n")
    with pytest.raises(MmferError, match="list.csv:2: clip id '../x'"):
        index_clip_ids(tmp_path / "list.csv")


def test_file_names_that_could_name_paths_get_safe_ids(tmp_path):
    from mmfer.data.index import index_source

    d = tmp_path / "Test"
    d.mkdir()
    for name in ("..avi", "a\\b.avi", "x\ny.avi", "fine.avi"):
        (d / name).write_bytes(b"")
    ids = sorted(e.clip_id for e in index_source(d))
    assert ids == ["a_b", "fine", "x_y"]  # hidden files ("..avi") are skipped in folders
    # given by path, the file "..avi" (clip id ".") once replaced its whole split folder in the cache
    assert [e.clip_id for e in index_source(d / "..avi")] == ["_."]


def test_checker_caps_entry_sizes_and_finds_corrupt_members(tmp_path):
    ids = ["a", "b"]
    index = tmp_path / "Test"
    index.mkdir()
    for cid in ids:
        (index / f"{cid}.avi").write_bytes(b"")
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.txt", "Happy")
        zf.writestr("b.txt", b"Sad" + b"\0" * 50_000_000)  # 50 MB of zeros: a few KB compressed
    assert bomb.stat().st_size < 200_000
    problems = check_submission(bomb, index=index)
    assert len(problems) == 1 and "b.txt: 50000003 bytes" in problems[0] and "\\x00" not in problems[0]
    # a local-header CRC that disagrees with the central directory
    ok = _zip(tmp_path / "ok.zip", {"a.txt": "Happy", "b.txt": "Sad"})
    assert check_submission(ok, index=index) == []
    data = bytearray(ok.read_bytes())
    at = data.index(b"PK\x03\x04") + 14
    data[at] ^= 0xFF
    bad_crc = tmp_path / "crc.zip"
    bad_crc.write_bytes(bytes(data))
    assert any("local header" in p for p in check_submission(bad_crc, index=index))
    # a damaged deflate stream is reported, not raised
    with zipfile.ZipFile(tmp_path / "d.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.txt", "Happy" * 3)
        zf.writestr("b.txt", "Sad")
    raw = bytearray((tmp_path / "d.zip").read_bytes())
    start = raw.index(b"PK\x03\x04") + 30 + len("a.txt")
    raw[start : start + 4] = b"\xff\xff\xff\xff"
    (tmp_path / "d.zip").write_bytes(bytes(raw))
    problems = check_submission(tmp_path / "d.zip", index=index)
    assert problems and any(p.startswith("a.txt") for p in problems)
    # unsafe names inside a zip someone else made
    unsafe = _zip(tmp_path / "u.zip", {"../a.txt": "Happy", "/b.txt": "Sad"})
    problems = check_submission(unsafe, index=index)
    assert any("climbs out" in p for p in problems) and any("absolute" in p for p in problems)


def test_non_utf8_names_in_the_index(tmp_path, capsys):
    """Issue 20, class 13: a test video named b'caf\\xe9.avi' is the clip 'café' in the index, the zip and the
    check; `mmfer submit` writes and checks it without a UnicodeEncodeError."""
    import os

    from mmfer.cli import main

    test = tmp_path / "Test"
    test.mkdir()
    open(os.fsencode(test) + b"/caf\xe9.avi", "wb").write(b"x")
    (test / "b.avi").write_bytes(b"x")
    assert index_clip_ids(test)[0] == ["b", "café"]
    scores = write_scores(tmp_path / "s.csv", ["café", "b"], [None, None], np.eye(7)[[0, 5]])
    assert main(["submit", str(scores), "--index", str(test), "--out", str(tmp_path / "t.zip")]) == 0
    assert main(["submit", "--check", str(tmp_path / "t.zip"), "--index", str(test)]) == 0
    with zipfile.ZipFile(tmp_path / "t.zip") as zf:
        assert zf.read("café.txt") == b"Angry"


def test_index_of_a_root_and_of_its_test_folder_agree(tmp_path):
    """Issue 20, class 7: `submit --index AF/Test` and `--index AF` list the same clips (sub-folders of Test/
    included), so one zip checks the same against both."""
    root = tmp_path / "AF"
    for rel in ("Test/a.avi", "Test/part2/b.avi", "Train/Angry/t.avi"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    assert index_clip_ids(root)[0] == index_clip_ids(root / "Test")[0] == ["a", "b"]
    scores = write_scores(tmp_path / "s.csv", ["a", "b"], [None, None], np.eye(7)[[0, 5]])
    write_submission(scores, index=root, out=tmp_path / "t.zip")
    assert check_submission(tmp_path / "t.zip", index=root) == []
    assert check_submission(tmp_path / "t.zip", index=root / "Test") == []


def test_check_names_unicode_spellings_and_case_collisions(tmp_path):
    """Issue 20, class 15: NFC and NFD spellings of one name were 'missing X / extra X', which look identical;
    ids differing only by case passed --check but collide on case-insensitive file systems."""
    import unicodedata

    nfc = unicodedata.normalize("NFC", "café")
    nfd = unicodedata.normalize("NFD", "café")
    index = tmp_path / "index.csv"
    index.write_text(f"path,label\n{nfc}.avi,\nClip.avi,\nclip.avi,\n", encoding="utf-8")
    z = tmp_path / "t.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for name in (nfd, "Clip", "clip"):
            zf.writestr(f"{name}.txt", "Happy")
    problems = check_submission(z, index=index)
    text = "\n".join(problems)
    assert "other Unicode characters" in text and "NFD in the zip, NFC in the index" in text
    assert "missing" not in text and "extra" not in text
    assert "differ only by letter case" in text and "'Clip.txt', 'clip.txt'" in text
    scores = write_scores(tmp_path / "s.csv", [nfc, "Clip", "clip"], [None] * 3, np.eye(7)[[0, 1, 2]])
    with pytest.raises(MmferError, match="differ only by letter case"):
        write_submission(scores, index=index, out=tmp_path / "w.zip")
    assert not (tmp_path / "w.zip").exists()



def test_check_prints_a_received_zips_names_without_their_control_characters(tmp_path, capsys):
    """A zip from someone else is the least trusted input: an entry named with ESC/BEL sequences was printed as it
    was by `mmfer submit --check`, so it could retitle or clear the terminal of whoever checked it."""
    from mmfer.cli import main

    index = tmp_path / "index.csv"
    index.write_text("path,label\nclip.avi,\n", encoding="utf-8")
    z = tmp_path / "t.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("clip.txt", "Happy")
        zf.writestr("evil\x1b]0;owned\x07\x1b[2J.txt", "Happy")
    assert main(["submit", "--check", str(z), "--index", str(index)]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and "evil\\x1b]0;owned\\x07\\x1b[2J" in out and "\x1b" not in out and "\x07" not in out

def test_the_old_argument_names_still_work_and_say_their_new_names(tmp_path):
    """write_submission(out_zip=, fallback_probs=) are out= and fill_missing=, as --out and --fill-missing."""
    test_dir = tmp_path / "Test"
    test_dir.mkdir()
    for c in ("a", "b"):
        (test_dir / f"{c}.avi").write_bytes(b"x")
    fused = tmp_path / "f.csv"
    write_scores(fused, ["a"], [None], np.eye(7)[[3]])
    with pytest.warns(DeprecationWarning, match=r"write_submission\(out_zip=\) is write_submission\(out=\) now"):
        with pytest.warns(DeprecationWarning, match=r"fallback_probs=\) is write_submission\(fill_missing=\)"):
            rep = write_submission(fused, index=test_dir, out_zip=tmp_path / "old.zip", fallback_probs=np.eye(7)[5])
    new = write_submission(fused, index=test_dir, out=tmp_path / "new.zip", fill_missing=np.eye(7)[5])
    assert rep["clips"] == new["clips"] == 2 and rep["filled"] == new["filled"] and list(rep["filled"]) == ["b"]
    with pytest.raises(MmferError, match="give out, the zip to write"):
        write_submission(fused, index=test_dir)
