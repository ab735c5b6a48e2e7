"""Writing clips into the cache: atomic, and nothing half-written left behind."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import mmfer.data.cache as cache_mod
from mmfer.data.cache import ARRAYS, load_clip, write_clip


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


def test_damaged_clips_are_named_and_found(tmp_path):
    """A missing or truncated array or a garbage meta.json: readers name the file and the repair."""
    from mmfer.data.cache import clip_problem
    from mmfer.errors import MmferError

    for damage in ("missing", "truncated", "garbage_meta", "list_meta", "reshaped"):
        write_clip(tmp_path, "Train", damage, _arrays(4), {"fps": 8})
        assert clip_problem(tmp_path, "Train", damage) == ""
        d = tmp_path / "Train" / damage
        if damage == "missing":
            (d / "faces.npy").unlink()
        elif damage == "truncated":
            data = (d / "faces.npy").read_bytes()
            (d / "faces.npy").write_bytes(data[: len(data) - 10])
        elif damage == "garbage_meta":
            (d / "meta.json").write_bytes(b"\x00\xff not json")
        elif damage == "list_meta":
            (d / "meta.json").write_text("[1, 2]")
        else:
            np.save(d / "mask.npy", np.ones(3, bool))
        problem = clip_problem(tmp_path, "Train", damage)
        assert problem and str(d) in problem, damage
        with pytest.raises(MmferError, match=r"damaged; run `mmfer preprocess`"):
            load_clip(tmp_path, "Train", damage)


def test_manifest_survives_foreign_torn_and_short_lines(tmp_path, monkeypatch):
    from mmfer.data.cache import MANIFEST, ClipRecord, append_manifest, read_manifest
    from mmfer.errors import MmferError

    rec = lambda cid: ClipRecord(clip_id=cid, split="Train", label=None, path="x.avi", status="ok")  # noqa: E731
    append_manifest(tmp_path, rec("a"))
    with open(tmp_path / MANIFEST, "a") as f:
        f.write("[1, 2]\nnull\n\"text\"\n{\"clip_id\": \"../x\", \"split\": \"Train\"}\n")
        f.write('{"clip_id": "torn", "split": "Tr')  # a kill mid-write: no newline
    append_manifest(tmp_path, rec("b"))  # starts on a new line instead of joining the torn one
    assert sorted(c for _, c in read_manifest(tmp_path)) == ["a", "b"]
    # a short write (full disk) is an error, and leaves no torn line of its own
    size = (tmp_path / MANIFEST).stat().st_size
    monkeypatch.setattr(cache_mod.os, "write", lambda fd, data: len(data) // 2)
    with pytest.raises(MmferError, match="only .* bytes written"):
        append_manifest(tmp_path, rec("c"))
    assert (tmp_path / MANIFEST).stat().st_size == size


def test_write_clip_refuses_ids_that_name_other_paths(tmp_path):
    from mmfer.errors import MmferError

    write_clip(tmp_path, "Test", "kept", _arrays(2), {})
    for bad in (".", "..", "a/b", "", "x\x00"):
        with pytest.raises(MmferError, match="clip id"):
            write_clip(tmp_path, "Test", bad, _arrays(2), {})
    assert load_clip(tmp_path, "Test", "kept").num_frames == 2  # the split folder is untouched


def test_stale_temporary_folders_are_removed_but_live_ones_kept(tmp_path):
    import os

    from mmfer.data.cache import remove_stale_temporaries

    write_clip(tmp_path, "Train", "a", _arrays(2), {})
    dead = tmp_path / "Train" / ".tmp-b-999999999"
    dead_old = tmp_path / "Train" / ".old-c-999999999"
    live = tmp_path / "Train" / f".tmp-d-{os.getppid()}"
    for d in (dead, dead_old, live):
        d.mkdir()
    elsewhere = tmp_path.parent / f"{tmp_path.name}_elsewhere"  # a split folder linked to another place
    (elsewhere / ".old-important-999999999").mkdir(parents=True)
    (tmp_path / "Val").symlink_to(elsewhere, target_is_directory=True)
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([dead, dead_old]) and live.is_dir()
    assert load_clip(tmp_path, "Train", "a").num_frames == 2
    assert (elsewhere / ".old-important-999999999").is_dir()  # never deleted through the link


def test_npy_appender_writes_what_numpy_reads_and_staged_clips_are_not_copied(tmp_path, monkeypatch):
    staged = cache_mod.staging_dir(tmp_path, "Train", "long")
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8) for n in (3, 1, 4)]
    out = cache_mod.NpyAppender(staged / "faces.npy", dtype=np.uint8, item_shape=(8, 8, 3))
    for b in batches:
        out.append(b)
    with pytest.raises(ValueError, match="items must be"):
        out.append(np.zeros((1, 9, 8, 3), np.uint8))
    faces = out.close()
    assert isinstance(faces, cache_mod.SpooledNpy) and faces.shape == (8, 8, 8, 3) and len(faces) == 8
    assert np.array_equal(np.asarray(faces), np.concatenate(batches))
    arrays = {**_arrays(8), "faces": faces}
    saved, mapped_at_rename = [], []
    real_save, real_replace = np.save, os.replace
    monkeypatch.setattr(cache_mod.np, "save", lambda path, *a, **k: (saved.append(path.name), real_save(path, *a, **k)))

    def replace(src, dst):  # Windows cannot rename a folder holding a mapped file: nothing of it may be mapped
        if Path("/proc/self/maps").is_file():
            mapped_at_rename.append(str(Path(src).resolve()) in Path("/proc/self/maps").read_text())
        return real_replace(src, dst)

    monkeypatch.setattr(cache_mod.os, "replace", replace)
    write_clip(tmp_path, "Train", "long", arrays, {"frames": 8}, staged=staged)
    assert "faces.npy" not in saved and len(saved) == len(ARRAYS) - 1  # streamed faces renamed, not rewritten
    assert not any(mapped_at_rename)
    clip = load_clip(tmp_path, "Train", "long")
    assert np.array_equal(clip.faces, np.concatenate(batches)) and not staged.exists()
    assert cache_mod.clip_problem(tmp_path, "Train", "long") == ""
    empty = cache_mod.NpyAppender(tmp_path / "empty.npy", dtype=np.float32, item_shape=(68, 2)).close()
    assert empty.shape == (0, 68, 2) and np.load(tmp_path / "empty.npy").shape == (0, 68, 2)


def _record(clip_id: str, status: str = "ok") -> "cache_mod.ClipRecord":
    return cache_mod.ClipRecord(clip_id=clip_id, split="Train", label="Sad", path=f"/data/{clip_id}.avi", status=status)


def test_prune_erases_removed_clips_keeps_every_other_line_and_never_half_erases(tmp_path, monkeypatch):
    """--prune: a removed clip's folder and every line naming it go; other lines stay byte for byte (a newer
    mmfer's fields, a line this one cannot read). A folder that cannot be deleted keeps its lines (an error names
    it), and a process staging clips in the cache makes it refuse: the manifest is rewritten whole."""
    import subprocess
    import sys

    from mmfer.errors import MmferError

    for c in ("a", "b"):
        write_clip(tmp_path, "Train", c, _arrays(2), {"frames": 2})
        cache_mod.append_manifest(tmp_path, _record(c))
    manifest = tmp_path / cache_mod.MANIFEST
    newer = '{"clip_id": "b", "split": "Train", "label": "Sad", "path": "/data/b.avi", "status": "ok", "from_v9": 1}\n'
    with open(manifest, "a", encoding="utf-8") as f:
        f.write(newer + "not json at all\n")
    cache_mod.append_manifest(tmp_path, _record("a", "removed"))
    kept = [line for line in manifest.read_text().splitlines(keepends=True) if '"a"' not in line]

    monkeypatch.setattr(cache_mod.shutil, "rmtree", lambda *a, **k: None)  # a file held open elsewhere
    with pytest.raises(MmferError, match=r"Train/a: could not be deleted .* 1 removed clip\(s\) keep"):
        cache_mod.prune_removed(tmp_path)
    assert '"a"' in manifest.read_text() and (tmp_path / "Train" / "a").is_dir()
    monkeypatch.undo()

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "Train" / f".tmp-c-{child.pid}").mkdir()
        with pytest.raises(MmferError, match=f"process {child.pid} is preprocessing into"):
            cache_mod.prune_removed(tmp_path)
    finally:
        child.kill()
        child.wait()
    (tmp_path / "Train" / f".tmp-c-{child.pid}").rmdir()

    assert cache_mod.prune_removed(tmp_path) == [("Train", "a")]
    assert manifest.read_text().splitlines(keepends=True) == kept and newer in kept
    assert not (tmp_path / "Train" / "a").exists() and load_clip(tmp_path, "Train", "b").num_frames == 2
    assert cache_mod.prune_removed(tmp_path) == []  # nothing left to erase
