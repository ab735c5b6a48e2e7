"""Issue 20, class 14: every output path is checked before any work, with exit code 2 and one clear line,
never a traceback after the work is done; and predict writes its main output first."""

from __future__ import annotations

import numpy as np
import pytest

from mmfer.cli import main
from mmfer.errors import MmferError
from mmfer.outputs import check_output_dir, check_output_file
from mmfer.scores import write_scores


@pytest.fixture()
def places(tmp_path):
    """A regular file (nothing can be created below it), a folder, and a score CSV to feed commands."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    folder = tmp_path / "folder"
    folder.mkdir()
    scores = write_scores(tmp_path / "s.csv", ["a", "b"], ["Angry", "Sad"], np.eye(7)[[0, 5]])
    return afile, folder, scores


def _refused(capsys, argv, option):
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert option in err and "Traceback" not in err, err
    return err


def test_check_functions(places):
    afile, folder, _ = places
    with pytest.raises(MmferError, match="is a folder"):
        check_output_file(folder, option="--out")
    with pytest.raises(MmferError, match="is a file"):
        check_output_file(afile / "x.csv", option="--out")
    with pytest.raises(MmferError, match="is a file"):
        check_output_dir(afile, option="--out")
    with pytest.raises(MmferError, match="cannot write"):
        check_output_file("/proc/mmfer-test.csv", option="--out")
    with pytest.raises(MmferError, match="ending in .png"):
        check_output_file(folder / "x.txt", option="--png", suffixes=(".png",))
    assert check_output_file(folder / "new" / "x.csv", option="--out") == folder / "new" / "x.csv"
    assert not (folder / "new").exists() and not list(folder.iterdir())  # a check leaves nothing behind
    with pytest.raises(MmferError, match="ends in a slash"):  # it had written a file named "newdir"
        check_output_file(f"{folder}/newdir/", option="--out")


def test_a_pipe_or_device_is_never_replaced_by_a_file(places, tmp_path, capsys):
    """--out /dev/stdout (a link to a device or pipe) had been renamed over: /dev/stdout became a plain file."""
    import os

    from mmfer.outputs import write_file

    _, _, scores = places
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    link = tmp_path / "stdout"
    link.symlink_to("/dev/null")
    for target in (fifo, link):
        with pytest.raises(MmferError, match="not a regular file"):
            check_output_file(target, option="--out")
        with pytest.raises(MmferError, match="not a regular file"):  # writers that check nothing first, too
            write_file(target, "x")
        _refused(capsys, ["evaluate", str(scores), "--report", str(target)], "--report")
    # a name without an extension gets one (--png, --submission): a device is refused first, not written beside
    for option in ("--png", "--submission"):
        with pytest.raises(MmferError, match="not a regular file"):
            check_output_file(link, option=option, default_suffix=".png")
    _refused(capsys, ["evaluate", str(scores), "--png", str(link)], "--png")
    assert not (tmp_path / "stdout.png").exists() and check_output_file(
        tmp_path / "cm", option="--png", default_suffix=".png") == tmp_path / "cm.png"
    assert link.is_symlink() and fifo.exists() and not fifo.is_file()


def test_every_command_checks_its_outputs_first(places, capsys, tmp_path, cremad_dir):
    afile, folder, scores = places
    video = str(next(cremad_dir.glob("*.flv")))
    # predict: --out an existing folder, and each optional output in an unwritable place
    _refused(capsys, ["predict", video, "--out", str(folder), "--quiet"], "--out")
    for option in ("--report", "--frames", "--submission"):
        _refused(capsys, ["predict", video, "--out", str(tmp_path / "p.csv"), option, str(afile / "x"), "--quiet"],
                 option)
    _refused(capsys, ["predict", video, "--out", str(tmp_path / "p.csv"), "--plots", str(afile), "--quiet"], "--plots")
    assert not (tmp_path / "p.csv").exists()
    # scores --out DIR (checked before the checkpoint is even loaded)
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"not read")
    _refused(capsys, ["scores", str(run), "--data", str(tmp_path), "--out", str(folder)], "--out")
    # train, fuse, ablate, preprocess --out FILE
    _refused(capsys, ["train", "configs/c3d.yaml", "--data", str(tmp_path), "--out", str(afile)], "--out")
    _refused(capsys, ["fuse", "--val", str(scores), "--out", str(afile)], "--out")
    _refused(capsys, ["ablate", "--val", str(scores), "--out", str(afile)], "--out")
    _refused(capsys, ["preprocess", str(cremad_dir), "--out", str(afile), "--no-progress"], "--out")
    # evaluate --report / --png unwritable, --png x.txt
    _refused(capsys, ["evaluate", str(scores), "--report", str(afile / "r.html")], "--report")
    _refused(capsys, ["evaluate", str(scores), "--png", str(afile / "c.png")], "--png")
    _refused(capsys, ["evaluate", str(scores), "--png", str(tmp_path / "x.txt")], "--png")
    # submit --out unwritable
    _refused(capsys, ["submit", str(scores), "--index", str(tmp_path), "--out", str(afile / "t.zip")], "--out")
    _refused(capsys, ["bench", "--out", str(folder)], "--out")
    # an output that is one of the command's inputs (the checkpoint, the score file) would replace it
    _refused(capsys, ["scores", str(run), "--data", str(tmp_path), "--out", str(run / "best.pt")], "--out")
    assert (run / "best.pt").read_bytes() == b"not read"
    before = scores.read_bytes()
    _refused(capsys, ["submit", str(scores), "--index", str(tmp_path), "--out", str(scores)], "--out")
    assert scores.read_bytes() == before


def test_evaluate_png_names_the_file_it_wrote(places, capsys, tmp_path):
    """Class 15 too: `--png confmat` writes confmat.png and says so."""
    _, _, scores = places
    assert main(["evaluate", str(scores), "--png", str(tmp_path / "confmat")]) == 0
    assert f"wrote {tmp_path / 'confmat.png'}" in capsys.readouterr().out
    assert (tmp_path / "confmat.png").read_bytes()[:4] == b"\x89PNG"


def test_outputs_replace_links_and_never_write_through_them(places, tmp_path, capsys):
    """Issue 20, class 9: a report, a figure, a run's files or a score CSV at a name that is a symbolic link (or a
    link planted at the temporary name) replace the link; the file it pointed to is never written."""
    import os

    from mmfer.engine.checkpoint import save_checkpoint
    from mmfer.outputs import write_file

    _, _, scores = places
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    for name in ("r.html", "c.png", "weights.json"):
        (out / name).symlink_to(victim)
    assert main(["evaluate", str(scores), "--report", str(out / "r.html"), "--png", str(out / "c.png")]) == 0
    write_file(out / "weights.json", "{}")
    for name in ("r.html", "c.png", "weights.json"):
        assert not (out / name).is_symlink() and (out / name).is_file()
    planted = out / f".s.csv.tmp{os.getpid()}"
    planted.symlink_to(victim)
    write_scores(out / "s.csv", ["a"], [None], np.eye(7)[[0]])
    import torch

    (out / f".best.pt.tmp{os.getpid()}").symlink_to(victim)
    save_checkpoint(out / "best.pt", model=torch.nn.Linear(2, 7), model_name="x", model_kwargs={}, preprocess={},
                    config={}, epoch=1)
    assert victim.read_text() == "keep me" and not planted.exists()


def test_atomic_write_whole_or_not_at_all(tmp_path):
    from mmfer.outputs import atomic_path, atomic_write

    target = tmp_path / "t.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w", newline="") as f:
            f.write("half")
            raise RuntimeError("killed midway")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]
    with atomic_write(target, "wb") as f:
        f.write(b"new")
    assert target.read_bytes() == b"new"
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = tmp_path / "link.png"
    link.symlink_to(victim)
    with atomic_path(link, suffix=".png") as tmp:
        assert tmp.name.endswith(".png") and tmp.parent == tmp_path
        tmp.write_bytes(b"png")
    assert not link.is_symlink() and link.read_bytes() == b"png" and victim.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.png", "t.csv", "victim"]


def test_a_replaced_output_keeps_the_permissions_its_owner_gave_it(tmp_path):
    """A `chmod 600 predictions.csv` survived only until the next run (or predict's save every minute)."""
    import os
    import stat

    from mmfer.outputs import CsvStream, write_file

    private = write_file(tmp_path / "p.json", "{}")
    os.chmod(private, 0o600)
    write_file(private, '{"a": 1}')
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600 and private.read_text() == '{"a": 1}'
    rows = tmp_path / "f.csv"
    rows.write_text("old\n")
    os.chmod(rows, 0o640)
    stream = CsvStream(rows, ["a"])
    stream.writerow([1])
    stream.close()
    assert stat.S_IMODE(os.stat(rows).st_mode) == 0o640 and rows.read_text().split() == ["a", "1"]
    fresh = write_file(tmp_path / "new.json", "{}")  # a new file: what the umask allows
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o644 & ~umask


def test_an_aborted_csv_stream_leaves_nothing_even_when_its_last_write_fails(tmp_path, monkeypatch):
    """On a full disk closing the file fails again (its buffered rows): the temporary file, which holds per-frame
    face boxes and probabilities, must go all the same."""
    from mmfer.outputs import CsvStream

    stream = CsvStream(tmp_path / "frames.csv", ["time", "box"])
    stream.writerow([0.0, "1 2 3 4"])
    real_close = stream._f.close

    def full_disk():
        real_close()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(stream._f, "close", full_disk)
    stream.abort()
    assert list(tmp_path.iterdir()) == []
    # Windows refuses to replace a file open in a spreadsheet: the error names it, and no temporary file stays
    import os

    import mmfer.outputs as outputs

    stream = CsvStream(tmp_path / "segments.csv", ["start"])

    def refused(src, dst):
        raise PermissionError(13, "Access is denied", str(src), None, str(dst))

    monkeypatch.setattr(outputs.os, "replace", refused)
    with pytest.raises(PermissionError) as e:
        stream.close()
    assert e.value.filename == str(tmp_path / "segments.csv") and os.listdir(tmp_path) == []


def test_temporaries_of_killed_writers_are_swept_and_files_reach_the_disk(tmp_path, monkeypatch):
    """A SIGKILL mid-write left .NAME.tmp<pid> files for good (only a later process of that same pid removed
    them); a rename before the data reached the disk could leave an empty file after a power cut."""
    import os
    import subprocess
    import time

    import mmfer.outputs as outputs

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs
    old = time.time() - outputs.STALE_AFTER_S - 60
    fresh = f".q.csv.tmp{dead.pid}"  # changed a moment ago: maybe another machine's live writer
    left = [f".p.csv.tmp{dead.pid}", f".a.png.tmp{dead.pid}.png", fresh, f".r.csv.tmp{os.getppid()}",
            f".env.tmp{dead.pid}", ".x.tmp99999999999999999999", ".notes.tmp"]
    for name in left:
        (tmp_path / name).write_text("x")
        if name != fresh:
            os.utime(tmp_path / name, (old, old))
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(outputs.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    for name in ("p.csv", "a.png", "q.csv", "r.csv", "x"):  # only a file's own temporaries go, as it is written
        outputs.write_file(tmp_path / name, "a,b\n")
    assert len(synced) == 5  # each flushed before its rename
    kept = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert kept == sorted([fresh, f".r.csv.tmp{os.getppid()}", f".env.tmp{dead.pid}", ".x.tmp99999999999999999999",
                           ".notes.tmp"])


def test_fuse_and_ablate_refuse_to_write_over_their_own_inputs(tmp_path, capsys):
    """`fuse --val FZ/fused_Val.csv ... --out FZ` had rewritten its own input, which the docs say is refused."""
    labels = ["Angry", "Sad", "Happy", "Fear"] * 3
    rng = np.random.default_rng(0)
    fz = tmp_path / "fz"
    fz.mkdir()
    own = write_scores(fz / "fused_Val.csv", [f"c{i}" for i in range(12)], labels, rng.dirichlet(np.ones(7), 12))
    other = write_scores(tmp_path / "face_Val.csv", [f"c{i}" for i in range(12)], labels, rng.dirichlet(np.ones(7), 12))
    before = own.read_bytes()
    err = _refused(capsys, ["fuse", "--val", str(own), str(other), "--out", str(fz), "--method", "mean"], "--out")
    assert "is one of this command's inputs" in err and own.read_bytes() == before
    (fz / "subsets").mkdir()
    inside = write_scores(fz / "subsets" / "a_Val.csv", [f"c{i}" for i in range(12)], labels, np.eye(7)[[0] * 12])
    err = _refused(capsys, ["ablate", "--val", str(inside), str(other), "--out", str(fz), "--method", "mean"], "--out")
    assert "its own files there" in err and inside.is_file()
    assert main(["fuse", "--val", str(own), str(other), "--out", str(tmp_path / "elsewhere"), "--method", "mean"]) == 0
