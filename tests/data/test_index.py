"""Indexing AFEW trees, CSV lists and plain folders into ClipEntry rows."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mmfer.data.index import (
    ClipEntry,
    file_label,
    index_afew,
    index_csv,
    index_folder,
    index_source,
)
from mmfer.errors import MmferError


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


@pytest.fixture
def afew(tmp_path: Path) -> Path:
    root = tmp_path / "afew"
    _touch(root / "Train" / "Angry" / "a1.avi")
    _touch(root / "Train" / "Angry" / "a2.mp4")
    _touch(root / "Train" / "Happy" / "h1.MKV")
    _touch(root / "Train" / "Happy" / "notes.txt")
    _touch(root / "Train" / "Calm" / "c1.avi")  # out of set: skipped
    _touch(root / "val" / "Sad" / "s1.webm")  # lower-case split folder
    _touch(root / "Test" / "t1.flv")
    _touch(root / "Test" / "t2.mov")
    return root


def test_afew_tree_labels_splits_and_ids(afew: Path, caplog):
    with caplog.at_level(logging.INFO, logger="mmfer.data.index"):
        entries = index_afew(afew)
    got = [(e.split, e.label, e.clip_id, e.path.name) for e in entries]
    assert got == [
        ("Train", "Angry", "a1", "a1.avi"),
        ("Train", "Angry", "a2", "a2.mp4"),
        ("Train", "Happy", "h1", "h1.MKV"),
        ("Val", "Sad", "s1", "s1.webm"),
        ("Test", None, "t1", "t1.flv"),
        ("Test", None, "t2", "t2.mov"),
    ]
    assert "Calm" in caplog.text


def test_afew_split_selection_and_missing_split(afew: Path, tmp_path: Path):
    assert {e.split for e in index_afew(afew, splits=["train"])} == {"Train"}
    assert {e.split for e in index_afew(afew, splits="Val,Test")} == {"Val", "Test"}
    only_train = tmp_path / "only"
    _touch(only_train / "Train" / "Sad" / "x.avi")
    with pytest.raises(MmferError, match="Val"):
        index_afew(only_train, splits=["Train", "Val"])
    assert [e.clip_id for e in index_afew(only_train, splits=None)] == ["x"]


def test_afew_duplicate_ids_name_both_files(afew: Path):
    _touch(afew / "Train" / "Happy" / "a1.mp4")  # same id as Train/Angry/a1.avi
    with pytest.raises(MmferError) as e:
        index_afew(afew)
    msg = str(e.value)
    assert "a1.avi" in msg and "a1.mp4" in msg and "Angry" in msg and "Happy" in msg


def test_ids_one_folder_on_macos_and_windows_are_refused_everywhere_a_cache_is_made(afew: Path, tmp_path: Path):
    """Clip1 and clip1 (or an accent composed and not) are one cache folder where letter case is not told apart:
    a cache made on Linux must not hold both. Indexing alone (an index of Test clips) still reads them."""
    from mmfer.data.preprocess import preprocess

    _touch(afew / "Train" / "Happy" / "A1.mp4")  # Train/Angry/a1.avi is there
    assert {e.clip_id for e in index_afew(afew)} >= {"a1", "A1"}
    with pytest.raises(MmferError, match=r"clip ids '(a1|A1)' and '(A1|a1)', one name where letter case or the way an accent is written"):
        preprocess(afew, tmp_path / "cache", progress=False)
    (afew / "Train" / "Happy" / "A1.mp4").unlink()
    _touch(afew / "Train" / "Sad" / "cafe\u0301.avi")
    _touch(afew / "Train" / "Happy" / "caf\u00e9.avi")
    with pytest.raises(MmferError, match=r"clip ids 'caf(e\\u0301|\\xe9)' and 'caf(\\xe9|e\\u0301)', one name"):
        preprocess(afew, tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache" / "manifest.jsonl").exists()


def test_afew_same_id_in_different_splits_is_fine(afew: Path):
    _touch(afew / "Test" / "a1.avi")
    ids = [(e.split, e.clip_id) for e in index_afew(afew)]
    assert ("Train", "a1") in ids and ("Test", "a1") in ids


def test_afew_unknown_emotion_folder_is_an_error(afew: Path):
    _touch(afew / "Train" / "Angyr" / "z.avi")
    with pytest.raises(MmferError, match="Angyr"):
        index_afew(afew)


def test_csv_relative_paths_labels_splits(tmp_path: Path):
    _touch(tmp_path / "clips" / "a.mp4")
    csv = tmp_path / "list.csv"
    csv.write_text(
        "path,label,split\n"
        "clips/a.mp4,anger,train\n"
        f"{tmp_path / 'elsewhere' / 'b.avi'},,Test\n"
        "clips/c.avi,calm,Val\n"  # out of set: dropped
        "clips/d.avi,Sad,Val\n"
    )
    entries = index_csv(csv)
    assert entries == [
        ClipEntry("a", "Train", "Angry", tmp_path / "clips" / "a.mp4"),
        ClipEntry("b", "Test", None, tmp_path / "elsewhere" / "b.avi"),
        ClipEntry("d", "Val", "Sad", tmp_path / "clips" / "d.avi"),
    ]
    assert [e.clip_id for e in index_csv(csv, splits=["Val"])] == ["d"]


def test_csv_default_split_and_clip_id_column(tmp_path: Path):
    csv = tmp_path / "l.csv"
    csv.write_text("path,label,clip_id\nx/a.mp4,Happy,first\ny/a.mp4,Happy,second\n")
    entries = index_csv(csv)
    assert [(e.clip_id, e.split) for e in entries] == [("first", "Test"), ("second", "Test")]


@pytest.mark.parametrize(
    "body, needle",
    [
        ("file,label\na.mp4,Sad\n", "path"),
        ("path,label\na.mp4,Sadd\n", ":2"),
        ("path,label,split\na.mp4,Sad,Tset\n", ":2"),
        ("path,label\na.mp4,Sad\nb.mp4\n", ":3"),
        ("path,label\nx/a.mp4,Sad\ny/a.avi,Happy\n", "x/a.mp4"),
    ],
)
def test_csv_bad_rows_name_file_and_line(tmp_path: Path, body: str, needle: str):
    csv = tmp_path / "bad.csv"
    csv.write_text(body)
    with pytest.raises(MmferError) as e:
        index_csv(csv)
    assert "bad.csv" in str(e.value) and needle in str(e.value)


def test_fixture_clip_list(cremad_dir: Path, cremad_videos):
    entries = index_csv(cremad_dir / "clips.csv")
    assert sorted(e.path.resolve() for e in entries) == sorted(p.resolve() for p in cremad_videos)
    assert all(e.path.is_file() for e in entries)
    assert [(e.split, e.label) for e in entries] == [
        ("Train", "Angry"), ("Train", "Disgust"), ("Train", "Fear"), ("Train", "Happy"), ("Val", "Neutral"), ("Val", "Sad"),
    ]


def test_folder_labels_from_names(tmp_path: Path, cremad_dir: Path):
    entries = index_folder(cremad_dir, labels_from="cremad")
    assert [e.label for e in entries] == ["Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad"]
    assert {e.split for e in entries} == {"Test"}
    rav = tmp_path / "rav"
    _touch(rav / "Actor_01" / "01-01-05-01-01-01-01.mp4")
    _touch(rav / "Actor_01" / "01-01-02-01-01-01-01.mp4")  # calm: skipped
    assert [e.label for e in index_folder(rav, split="Train", labels_from="ravdess")] == ["Angry"]
    _touch(tmp_path / "byfolder" / "Fear" / "f.avi")
    _touch(tmp_path / "byfolder" / "more" / "Happy" / "g.avi")  # recursive; label from the direct parent
    got = [(e.clip_id, e.label) for e in index_folder(tmp_path / "byfolder", labels_from="folder")]
    assert got == [("f", "Fear"), ("g", "Happy")]
    with pytest.raises(MmferError):
        index_folder(tmp_path / "byfolder", labels_from="bogus")


def test_file_label_auto_then_named_sources():
    # auto: the parent folder first (any case, aliases), else a RAVDESS, else a CREMA-D file name
    assert file_label("x/ANGRY/clip.mp4") == (True, "Angry")
    assert file_label(Path("x/happiness/clip.wav")) == (True, "Happy")
    assert file_label("x/Contempt/clip.mp4") == (True, None)  # known, outside the seven
    assert file_label("Actor_01/01-01-05-01-01-01-01.mp4") == (True, "Angry")
    assert file_label("Actor_01/01-01-02-01-01-01-01.mp4") == (True, None)  # RAVDESS calm
    assert file_label("clips/1001_DFA_DIS_XX.flv") == (True, "Disgust")
    assert file_label("Sad/1001_DFA_DIS_XX.flv") == (True, "Sad")  # the folder wins
    assert file_label("clips/holiday.mp4") == (False, None)
    # a named source reads only that, and a file it cannot read is an error naming the file
    assert file_label("Sad/1001_DFA_DIS_XX.flv", "cremad") == (True, "Disgust")
    assert file_label("Actor_01/01-01-02-01-01-01-01.mp4", "ravdess") == (True, None)
    with pytest.raises(MmferError, match="clips/a.mp4: parent folder is not an emotion name"):
        file_label("clips/a.mp4", "folder")
    with pytest.raises(MmferError, match="not a RAVDESS file name"):
        file_label("Angry/1001_DFA_DIS_XX.flv", "ravdess")
    with pytest.raises(MmferError, match="labels_from='bogus'"):
        file_label("Angry/a.mp4", "bogus")


def test_source_dispatch(afew: Path, cremad_dir: Path, cremad_videos, tmp_path: Path):
    assert len(index_source(afew)) == 6
    assert len(index_source(cremad_dir / "clips.csv", splits="Train")) == 4
    assert [e.split for e in index_source(cremad_dir)] == ["Test"] * 6
    one = index_source(cremad_videos[0])
    assert one == [ClipEntry(cremad_videos[0].stem, "Test", None, cremad_videos[0])]
    with pytest.raises(MmferError, match="no such"):
        index_source(tmp_path / "missing")
    with pytest.raises(MmferError):
        index_source(cremad_dir / "ATTRIBUTION.md")
    with pytest.raises(MmferError, match="Test"):
        index_source(cremad_dir, splits="Train")


def test_hidden_media_files_are_left_out_with_a_warning(tmp_path: Path, caplog):
    (tmp_path / ".git").mkdir()
    for name in ("a.mp4", "..flv", ".b.mp4", ".git/c.mp4", ".notes.txt", "._a.mp4"):  # ._a.mp4: macOS metadata
        (tmp_path / name).write_bytes(b"x")
    with caplog.at_level(logging.WARNING, logger="mmfer.data.index"):
        entries = index_folder(tmp_path)
    assert [e.clip_id for e in entries] == ["a"]
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2 and all("starts with '.'" in w for w in warned)  # not .git's content, .txt or ._a
    assert any("..flv" in w for w in warned) and any(".b.mp4" in w for w in warned)


def test_clips_that_are_one_file_are_found_and_said_worst_first(tmp_path, caplog):
    """A copy, a link or the same file under two emotions or in Train and Val is named before any work; files
    of distinct content, even of equal size, are not."""
    import logging

    from mmfer.data.index import ClipEntry, same_content
    from mmfer.data.preprocess import _warn_same_content

    (tmp_path / "a.avi").write_bytes(b"video one")
    (tmp_path / "b.avi").write_bytes(b"video two")  # same size, other bytes
    (tmp_path / "c.avi").write_bytes(b"video one")  # a copy of a
    (tmp_path / "d.avi").symlink_to(tmp_path / "b.avi")
    entries = [ClipEntry("a", "Train", "Angry", tmp_path / "a.avi"), ClipEntry("b", "Train", "Sad", tmp_path / "b.avi"),
               ClipEntry("c", "Val", "Angry", tmp_path / "c.avi"), ClipEntry("d", "Train", "Happy", tmp_path / "d.avi"),
               ClipEntry("gone", "Train", "Sad", tmp_path / "missing.avi")]
    groups = sorted(sorted(e.clip_id for e in g) for g in same_content(entries))
    assert groups == [["a", "c"], ["b", "d"]]
    assert same_content(entries[:2]) == []
    (tmp_path / "empty1.avi").write_bytes(b"")  # two empty files are two failures, not one clip twice
    (tmp_path / "empty2.avi").write_bytes(b"")
    assert same_content([ClipEntry(n, "Test", None, tmp_path / f"{n}.avi") for n in ("empty1", "empty2")]) == []
    with caplog.at_level(logging.WARNING, logger="mmfer"):
        _warn_same_content(entries)
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith("2 group(s) of clips are the same file")
    assert message.index("Train/b (Sad) = Train/d (Happy) (under different labels)") < message.index(
        "Train/a (Angry) = Val/c (Angry) (in Train and in another split)")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mmfer"):
        _warn_same_content(entries[:2])
    assert not caplog.records
    # past the first 64 KiB: files alike there and different at the end are told apart; an unlabelled Test copy
    # of a Train clip is not "under different labels", a Val clip in Test is in two splits
    head = bytes(range(256)) * 256
    (tmp_path / "e.avi").write_bytes(head + b"tail one")
    (tmp_path / "f.avi").write_bytes(head + b"tail two")
    (tmp_path / "g.avi").write_bytes(head + b"tail one")
    big = [ClipEntry("e", "Train", "Sad", tmp_path / "e.avi"), ClipEntry("f", "Train", "Sad", tmp_path / "f.avi"),
           ClipEntry("g", "Test", None, tmp_path / "g.avi"), ClipEntry("a", "Val", "Angry", tmp_path / "a.avi"),
           ClipEntry("c", "Test", None, tmp_path / "c.avi")]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mmfer"):
        _warn_same_content(big)
    (message,) = [r.getMessage() for r in caplog.records]
    assert "Train/e (Sad) = Test/g (in Train and in another split); Val/a (Angry) = Test/c (in two splits)" in message


def test_sound_and_image_files_in_an_afew_split_are_said_when_left_out(tmp_path, caplog):
    """predict scores them (and puts them in a --submission zip), preprocess and submit's index leave them out:
    said, not silent."""
    for rel in ("Val/Happy/v1.avi", "Val/Happy/v1.wav", "Test/t1.avi", "Test/sub/t2.mp3", "Test/t3.jpg"):
        _touch(tmp_path / "afew" / rel)
    with caplog.at_level(logging.WARNING, logger="mmfer"):
        entries = index_afew(tmp_path / "afew", splits=None)
    assert sorted(e.clip_id for e in entries) == ["t1", "v1"]
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2  # once per split, not per emotion folder
    assert "Val: 1 sound or image file(s) left out, an AFEW split holds videos (e.g. Happy/v1.wav)" in said[0]
    assert "Test: 2 sound or image file(s) left out" in said[1] and "sub/t2.mp3, t3.jpg" in said[1]


def test_linked_folders_are_searched_once_and_a_loop_is_not_followed(tmp_path):
    """A folder of links to the real folders (a corpus assembled by `ln -s`) is searched like the real one;
    Path.rglob did not follow them, so predict said 'no video, image or audio files inside'."""
    from mmfer.data.index import is_video, iter_files

    _touch(tmp_path / "real" / "Actor_01" / "a.avi")
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "Actor_01").symlink_to(tmp_path / "real" / "Actor_01")
    (tmp_path / "real" / "Actor_01" / "up").symlink_to(tmp_path / "real")  # a loop
    found = list(iter_files(tmp_path / "linked", is_video))
    assert [p.name for p in found] == ["a.avi"]
    assert [p.name for p in iter_files(tmp_path / "real", is_video)] == ["a.avi"]
    # links inside the tree never take a real folder's place (a hidden one hid its files; one in another emotion
    # folder gave them that folder's label), and a link up past the tree does not bring in what lies outside it
    tree = tmp_path / "tree"
    _touch(tree / "Happy" / "h.avi")
    _touch(tree / "Angry" / "a.avi")
    _touch(tmp_path / "outside.avi")
    (tree / ".snap").symlink_to(tree / "Happy")
    (tree / "Angry" / "more").symlink_to(tree / "Happy")
    (tree / "Happy" / "up").symlink_to(tmp_path)
    assert [p.relative_to(tree).as_posix() for p in iter_files(tree, is_video)] == ["Angry/a.avi", "Happy/h.avi"]


def test_links_to_the_root_back_to_an_ancestor_or_into_a_folder_reached_already_bring_nothing_twice(tmp_path, caplog):
    """Found by a user: a link to / searched the whole machine, a loop through an outside folder back to an
    ancestor brought Train's clips in as Test's, one file reached by two links was listed twice, and a link to
    nothing was left out without a word."""
    from mmfer.data.index import is_image, walk_files

    tree, out = tmp_path / "anc" / "tree", tmp_path / "outside"
    _touch(tree / "real" / "a.png")
    _touch(tmp_path / "anc" / "beside.png")
    (tree / "rootlink").symlink_to("/")
    _touch(out / "Y" / "y.png")
    (tree / "out").symlink_to(out / "Y")
    (out / "Y" / "back").symlink_to(tmp_path / "anc")  # through an outside folder, back to an ancestor
    _touch(out / "X" / "sub" / "n.png")
    _touch(out / "X" / "x.png")
    (tree / "a_sub").symlink_to(out / "X" / "sub")  # one file, two links: X/sub first, then X
    (tree / "b_x").symlink_to(out / "X")
    (tree / "gone").symlink_to(tmp_path / "nowhere")
    (tree / "gone.png").symlink_to(tmp_path / "nowhere.png")
    found = sorted(p.relative_to(tree).as_posix() for p in walk_files(tree) if is_image(p))
    assert found == ["a_sub/n.png", "b_x/x.png", "out/y.png", "real/a.png"]
    assert "gone: a link to" in caplog.text and "gone.png: a link to" in caplog.text
    # a link into a hidden folder of a folder reached already is followed (walking that folder never gets there),
    # a link to itself is said
    _touch(out / "X" / ".h" / "Y" / "h.png")
    (tree / "c_hidden").symlink_to(out / "X" / ".h" / "Y")
    (tree / "loop").symlink_to(tree / "loop")
    (tree / "null").symlink_to("/dev/null")
    caplog.clear()
    found = sorted(p.relative_to(tree).as_posix() for p in walk_files(tree) if is_image(p))
    assert found == ["a_sub/n.png", "b_x/x.png", "c_hidden/h.png", "out/y.png", "real/a.png"]
    assert "loop: not searched" in caplog.text and "null: a link to /dev/null, which is neither a file nor" in caplog.text
    (tree / "c_hidden").unlink()
    (tree / "null").unlink()
    (tree / "loop").unlink()
    # the other order: X first, then X/sub
    (tree / "a_sub").unlink()
    (tree / "c_sub").symlink_to(out / "X" / "sub")
    found = sorted(p.relative_to(tree).as_posix() for p in walk_files(tree) if is_image(p))
    assert found == ["b_x/sub/n.png", "b_x/x.png", "out/y.png", "real/a.png"]


def test_emotion_folders_say_what_they_leave_out_links_and_unreadable_ones_too(tmp_path, caplog, monkeypatch):
    """Train/Happy/session1/clip.avi was dropped without a word, as were links to nothing (cremad_to_afew.py makes
    links: a moved corpus made clips vanish); an unreadable split folder was a traceback. A clip in a sub-folder
    stays out (`--labels-from folder` reads a file's own folder, so it would be labelled here and not there),
    said with its count."""
    import os

    root = tmp_path / "afew"
    _touch(root / "Train" / "Happy" / "h1.avi")
    _touch(root / "Train" / "Happy" / "session1" / "h2.avi")
    (root / "Train" / "Happy" / "gone.avi").symlink_to(tmp_path / "moved" / "gone.avi")
    _touch(root / "Train" / "Sad" / "s1.avi")
    with caplog.at_level(logging.WARNING, logger="mmfer"):
        entries = index_afew(root, splits=None)
    assert [(e.label, e.clip_id) for e in entries] == [("Happy", "h1"), ("Sad", "s1")]
    assert "gone.avi: a link to" in caplog.text and "which is not there" in caplog.text
    assert "1 video(s) in sub-folders of Happy/ are ignored (expected Train/Happy/<clip>; e.g. session1/h2.avi)" \
        in caplog.text
    import mmfer.data.index as index

    denied, scandir = set(), os.scandir

    def as_if_unreadable(path):  # chmod 000 as a user (root reads any folder, and CI may run as root)
        if str(path) in denied:
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(index.os, "scandir", as_if_unreadable)
    denied.add(str(root / "Train" / "Sad"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mmfer"):
        assert [e.clip_id for e in index_afew(root, splits=None)] == ["h1"]
    assert f"{root / 'Train' / 'Sad'}: not searched (Permission denied)" in caplog.text
    for split in ("Train", "Test"):
        _touch(root / "Test" / "t1.avi")
        denied.add(str(root / split))
        with pytest.raises(MmferError, match=f"{split}: cannot be read .Permission denied.; check its permissions"):
            index_afew(root, splits=[split])


def test_a_plain_folder_says_the_sound_and_image_files_it_leaves_out(tmp_path, caplog):
    import os

    for rel in ("a.avi", "b.wav", "sub/c.jpg"):
        _touch(tmp_path / "f" / rel)
    os.mkfifo(tmp_path / "f" / "live.mp4")  # a pipe named like a video: never opened (it would block)
    with caplog.at_level(logging.WARNING, logger="mmfer"):
        assert [e.clip_id for e in index_folder(tmp_path / "f")] == ["a"]
    assert "2 sound or image file(s) left out, only videos are read as clips here (e.g. b.wav, sub/c.jpg)" in caplog.text
    assert f"{tmp_path / 'f' / 'live.mp4'}: not a regular file (a pipe, socket or device): left out" in caplog.text
