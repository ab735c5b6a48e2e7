"""The `mmfer` entry point: output piped into a reader that stops early (`| head`) ends quietly."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from mmfer.labels import EMOTIONS
from mmfer.scores import write_scores


@pytest.fixture
def score_csv(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.random((30, len(EMOTIONS)))
    return write_scores(tmp_path / "scores_Val.csv", [f"clip{i}" for i in range(30)],
                        [EMOTIONS[i % len(EMOTIONS)] for i in range(30)], probs / probs.sum(1, keepdims=True))


def _env(unbuffered: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    return env


# Buffered, the closed pipe shows when main flushes stdout; unbuffered, in the print itself.
@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
def test_evaluate_into_a_closed_pipe_exits_quietly(score_csv, unbuffered):
    # The reader is gone before mmfer writes anything (the certain form of `| head -1` closing early: a reader
    # that waits for the first line races mmfer's last write of a table this short, and mostly loses).
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "mmfer", "evaluate", str(score_csv)], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, env=_env(unbuffered), timeout=120)
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert proc.returncode == 141, proc.stderr


def test_evaluate_read_to_the_end_is_unchanged(score_csv):
    proc = subprocess.run([sys.executable, "-m", "mmfer", "evaluate", str(score_csv)], capture_output=True,
                          text=True, env=_env(False), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("clips scored: 30") and len(proc.stdout.splitlines()) > 5


def test_a_broken_pipe_other_than_stdout_still_shows(score_csv, tmp_path):
    # A worker's pipe failing is a real error: only a closed stdout is silenced.
    code = ("import sys, mmfer.cli, mmfer.metrics\n"
            "def boom(*a, **k): raise BrokenPipeError(32, 'worker pipe')\n"
            "mmfer.metrics.evaluate_file = boom\n"
            f"sys.exit(mmfer.cli.main(['evaluate', {str(score_csv)!r}]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(False), timeout=120)
    assert proc.returncode == 1
    assert "BrokenPipeError: [Errno 32] worker pipe" in proc.stderr


def test_building_the_cli_loads_no_torch():
    # `mmfer preprocess` forks its workers only while torch is not loaded; every command builds the full parser.
    code = "import sys, mmfer.cli; mmfer.cli.build_parser(); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_a_stop_that_arrives_while_a_loader_starts_is_raised_after_it_not_lost():
    """A DataLoader forks its workers inside iter(); a KeyboardInterrupt raised in fork's hooks was printed and
    lost, and training went on. start_iter holds Ctrl-C and SIGTERM back until iter() returns, then raises."""
    import os
    import signal

    from mmfer.signals import sigterm_as_interrupt, start_iter

    class Starting:  # a DataLoader with worker processes (one without forks nothing: no swap, see test_embedding)
        finished = False
        num_workers = 2

        def __iter__(self):
            os.kill(os.getpid(), signal.SIGTERM)  # the stop arrives while the workers start
            for _ in range(1000):  # bytecode runs on: an unheld signal would be raised in here
                pass
            Starting.finished = True
            return iter([1, 2])

    before = sigterm_as_interrupt()
    try:
        with pytest.raises(KeyboardInterrupt):
            start_iter(Starting())
        assert Starting.finished  # raised after iter() was done, where the caller can stop cleanly
        assert list(start_iter([1, 2])) == [1, 2]
        with pytest.raises(KeyboardInterrupt):  # the handler held back is the one in force again
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pass
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a caller that ignores SIGTERM: still ignored after
        Starting.finished = False
        assert list(start_iter(Starting())) == [1, 2] and Starting.finished
    finally:
        signal.signal(signal.SIGTERM, before)


def test_an_unknown_option_is_said_with_the_commands_usage(capsys):
    """`mmfer preprocess ... --bogus` shows preprocess's usage (argparse showed the top-level one, listing commands),
    and preprocess takes --resume, which it always does, as train and predict take it."""
    from mmfer.cli import main

    with pytest.raises(SystemExit) as e:
        main(["preprocess", "src", "--out", "cache", "--bogus"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "usage: mmfer preprocess" in err and "unrecognized arguments: --bogus" in err
    with pytest.raises(SystemExit):
        main(["preprocess", "--help"])
    assert "--resume" in capsys.readouterr().out


def test_an_interrupted_command_says_what_it_kept_and_a_command_that_is_accepted(tmp_path):
    """`train` stopped before its first epoch suggested --resume, which it then refused (no last.pt); scores and
    bench said "finished work is kept, re-run the same command to resume" though they keep and resume nothing."""
    from argparse import Namespace

    from mmfer.cli import _interrupted_hint

    run = tmp_path / "run"
    assert "without --resume" in _interrupted_hint(Namespace(command="train", out=str(run), folds=None))
    run.mkdir()
    (run / "last.pt").write_bytes(b"x")
    assert "with --resume" in _interrupted_hint(Namespace(command="train", out=str(run), folds=None))
    import torch

    torch.save({"model_name": "audio_cnn", "epoch": 3, "state_dict": {}}, run / "last.pt")  # (the log may hold a fourth epoch)
    assert _interrupted_hint(Namespace(command="train", out=str(run), folds=None)).startswith("epochs 1-3 are kept")
    assert "same command" in _interrupted_hint(Namespace(command="train", out=str(tmp_path / "cv"), folds="5"))
    for command in ("scores", "bench", "fuse"):
        assert "nothing was written" in _interrupted_hint(Namespace(command=command, out=None))
    hint = _interrupted_hint(Namespace(command="predict", out=str(tmp_path / "p.csv")))
    assert "no file was finished, so nothing was written" in hint and "at the end" not in hint  # it saves as it goes
    (tmp_path / "p.csv").write_text("path\n")
    assert "run the same command again to analyse only the others" in _interrupted_hint(
        Namespace(command="predict", out=str(tmp_path / "p.csv")))
    assert "--resume (and without --frames" in _interrupted_hint(  # the same command would analyse every file
        Namespace(command="predict", out=str(tmp_path / "p.csv"), report=str(tmp_path / "r.html")))
    # an earlier run's --out, not written by a run stopped before its first file finished: not to be resumed
    hint = _interrupted_hint(Namespace(command="predict", out=str(tmp_path / "p.csv")), out_written=False)
    assert "was not written (it is an earlier run's)" in hint and "--resume" not in hint
    assert "resume" in _interrupted_hint(Namespace(command="preprocess", out=str(tmp_path / "cache")))


def test_a_full_disk_is_an_error_that_names_the_file_and_how_to_go_on(tmp_path, monkeypatch, capsys):
    """No space left (or a read-only file system) ended commands with a traceback; torch's checkpoint writer said
    it as "unexpected pos", which names no disk."""
    import errno

    import torch

    import mmfer.cli as cli
    from mmfer.cli import main
    from mmfer.engine import checkpoint

    def full(names):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "p.csv"))

    monkeypatch.setattr(cli, "import_user_modules", full)
    assert main(["merge", str(tmp_path / "a.csv"), "--out", str(tmp_path / "m.csv")]) == 2
    err = capsys.readouterr().err
    assert f"cannot write {tmp_path / 'p.csv'}: no space left on the device" in err and "Traceback" not in err

    def shm(names):  # a read-only place that is no output (the worker pool's shared memory, /dev/shm)
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(cli, "import_user_modules", shm)
    assert main(["merge", str(tmp_path / "a.csv"), "--out", str(tmp_path / "m.csv")]) == 2
    err = capsys.readouterr().err
    assert "a write failed: the file system is read-only" in err and "cannot write an output" not in err

    def open_elsewhere(names):  # Windows refuses to replace a file a spreadsheet has open
        raise PermissionError(errno.EACCES, "Access is denied", str(tmp_path / "log.csv"))

    monkeypatch.setattr(cli, "import_user_modules", open_elsewhere)
    assert main(["merge", str(tmp_path / "a.csv"), "--out", str(tmp_path / "m.csv")]) == 2
    err = capsys.readouterr().err
    assert f"cannot open {tmp_path / 'log.csv'}: permission denied (open in another program?" in err
    assert "Traceback" not in err

    def short_write(*a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 3188736 vs 3188628")

    def late_short_write(obj, f, *a, **k):  # what torch raises for a failure late in the write
        f.write(b"x")
        raise OSError(errno.ENOSPC, "No space left on device")

    for fake in (short_write, late_short_write):
        monkeypatch.setattr(torch, "save", fake)
        with pytest.raises(OSError) as e:
            checkpoint.save_checkpoint(tmp_path / "run" / "last.pt", model=torch.nn.Linear(2, 7), model_name="x",
                                       model_kwargs={}, preprocess={}, config={}, epoch=1)
        assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "run" / "last.pt"), fake
        assert not list((tmp_path / "run").iterdir())  # no half-written file left
    # any file written whole-or-not (CSV, JSON) names itself when the disk fills in write, flush or close
    from mmfer.outputs import atomic_write

    with pytest.raises(OSError) as e:
        with atomic_write(tmp_path / "s.csv") as f:
            f.write("a")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert e.value.filename == str(tmp_path / "s.csv") and not list(tmp_path.glob("*s.csv*"))


def test_import_takes_a_python_file_as_well_as_a_module(tmp_path, monkeypatch):
    """`mmfer --import /path/my_faces.py` said "No module named ..." with no hint."""
    import sys

    from mmfer.plugins import import_user_modules
    from mmfer.errors import MmferError

    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "mmfer_test_plugin.py").write_text("LOADED = True\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "mmfer_test_plugin", raising=False)
    import_user_modules([str(tmp_path / "lib" / "mmfer_test_plugin.py")])
    assert sys.modules["mmfer_test_plugin"].LOADED and str(tmp_path / "lib") in sys.path  # workers import it too
    with pytest.raises(MmferError, match=r"--import .*nothere.py: no such file"):
        import_user_modules([str(tmp_path / "nothere.py")])
    (tmp_path / "lib" / "json.py").write_text("raise SystemExit('never run')\n")
    with pytest.raises(MmferError, match=r"a module named json is already loaded .*rename the file"):
        import_user_modules([str(tmp_path / "lib" / "json.py")])
    # a file beside it named like an installed module is never imported in that module's place (the folder was
    # searched first: a dlib.py beside a reviewed plugin ran as mmfer imported dlib)
    (tmp_path / "lib" / "colorsys.py").write_text("raise SystemExit('never run')\n")
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    import colorsys  # noqa: F401 - the installed one, with the plugin's folder on the path

    assert str(tmp_path) not in str(sys.modules["colorsys"].__file__)
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    with pytest.raises(MmferError, match=r"the name colorsys is an installed module .*rename the file"):
        import_user_modules([str(tmp_path / "lib" / "colorsys.py")])


def test_a_home_that_cannot_be_written_costs_no_warnings_and_leaves_nothing(tmp_path, monkeypatch):
    """In a container with HOME read-only or unset, matplotlib warned twice on every plotting command, printed its
    font-cache line through mmfer's INFO logging, and its temporary folder stayed after a kill."""
    import os
    import subprocess
    import sys

    import numpy as np

    from mmfer.scores import write_scores

    write_scores(tmp_path / "s.csv", ["a", "b"], ["Angry", "Sad"], np.eye(7)[[0, 5]])
    spare = tmp_path / "tmp"
    spare.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME")}
    (tmp_path / "a_file").write_text("")
    env.update(HOME=str(tmp_path / "a_file" / "home"), TMPDIR=str(spare))  # nothing can be made there, even by root
    proc = subprocess.run([sys.executable, "-m", "mmfer", "evaluate", str(tmp_path / "s.csv"), "--png",
                           str(tmp_path / "cm.png")], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "matplotlib" not in proc.stderr and (tmp_path / "cm.png").is_file()
    assert list(spare.iterdir()) == []  # its private config folder removed
    # nothing is created to find out; a writable home is left to matplotlib
    from mmfer.outputs import private_matplotlib_config

    home = tmp_path / "home"
    home.mkdir()
    for var, value in (("HOME", str(home)), ("XDG_CONFIG_HOME", None), ("XDG_CACHE_HOME", None), ("MPLCONFIGDIR", None)):
        monkeypatch.setenv(var, value) if value else monkeypatch.delenv(var, raising=False)
    monkeypatch.delitem(sys.modules, "matplotlib", raising=False)
    assert private_matplotlib_config() is None and list(home.iterdir()) == []


def test_a_file_name_cannot_drive_the_terminal(tmp_path, capsys):
    """A name from an untrusted folder holding ESC or CSI was logged and printed as it was: `bad<ESC>[2J.mp4`
    cleared the terminal that read the warning. Log lines, error lines and tables show control characters as
    ``\\x1b``; the files mmfer writes keep the real name."""
    from mmfer.cli import main
    from mmfer.text import terminal_text
    from mmfer.progress import TerminalFormatter

    assert terminal_text("a\x1b[2Jb\tc\nd\x9be\x07f") == "a\\x1b[2Jb\tc\nd\\x9be\\x07f"  # tab and newline kept
    assert terminal_text("café.mp4") == "café.mp4" and terminal_text("a\nb", newlines=False) == "a\\x0ab"
    record = logging.LogRecord("mmfer.x", logging.WARNING, __file__, 1, "cannot read %s", ("a\x1b]0;owned\x07",), None)
    assert TerminalFormatter("%(message)s").format(record) == "cannot read a\\x1b]0;owned\\x07"
    # a newline in a name given as an argument cannot start a fake log line; the message's own lines stay
    fake = "a.mp4\nERROR mmfer.predict: disk full"
    record = logging.LogRecord("mmfer.x", logging.WARNING, __file__, 1, "cannot read %s\nnext", (fake,), None)
    assert TerminalFormatter("%(message)s").format(record) == "cannot read a.mp4\\x0aERROR mmfer.predict: disk full\nnext"

    weird = tmp_path / "bad\x1b[2Jname.csv"
    assert main(["evaluate", str(weird)]) == 2
    err = capsys.readouterr().err
    assert "bad\\x1b[2Jname.csv" in err and "\x1b" not in err
    # the command line's own log handler (set up by main, which pytest's handlers pre-empt in this process)
    plugin = tmp_path / "mmfer_logs_a_name.py"
    plugin.write_text("import logging\nlogging.getLogger('mmfer.plugin').warning('cannot read %s', 'x\\x1b[31mred')\n")
    proc = subprocess.run([sys.executable, "-m", "mmfer", "--import", str(plugin), "evaluate", str(weird)],
                          capture_output=True, text=True, timeout=300)
    assert "WARNING mmfer.plugin: cannot read x\\x1b[31mred" in proc.stderr and "\x1b" not in proc.stderr


def test_a_preprocess_summary_shows_names_and_reasons_escaped():
    """The summary's reasons and paths come from file names: a CSI or a newline in one was printed as it was."""
    from mmfer.data.preprocess import Failure, PreprocessSummary

    s = PreprocessSummary(out="cache", total=3)
    s.failures.append(Failure("Train", "a", "Train/a.mp4", "Train/evil\x1b[31m.mp4: truncated"))
    s.missing.append(Failure("Train", "b", "Train/b.mp4\nfaked row", "source missing"))
    s.warned.append(("Train", "c", ["audio unreadable, stored empty: c\x9b2J.mp4"]))
    table = s.table()
    assert "evil\\x1b[31m.mp4" in table and "b.mp4\\x0afaked row" in table and "c\\x9b2J.mp4" in table
    assert not any(ch in table for ch in "\x1b\x9b") and "\nfaked row" not in table
