"""mmfer.signals.process_alive: whether a lock's owner still runs, on POSIX and (simulated) Windows."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

from mmfer import signals


def test_a_running_process_is_alive_and_a_finished_one_is_not():
    assert signals.process_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid names nobody now
    assert not signals.process_alive(child.pid)


class _Kernel32:
    """kernel32 as the Windows path calls it, over a table of pid -> exit code (259 while running); pids absent
    are no process, pids in ``denied`` exist but cannot be opened."""

    def __init__(self, codes: dict[int, int], denied=()):
        self.codes, self.denied, self.closed, self.error = codes, set(denied), [], 0

    def OpenProcess(self, access, inherit, pid):  # noqa: N802 - the Win32 names
        assert access == 0x1000 and inherit is False
        if pid in self.denied:
            self.error = 5
            return 0
        if pid not in self.codes:
            self.error = 87  # ERROR_INVALID_PARAMETER: no such process
            return 0
        return 1000 + pid

    def GetExitCodeProcess(self, handle, ref):  # noqa: N802
        ref._obj.value = self.codes[handle - 1000]
        return 1

    def CloseHandle(self, handle):  # noqa: N802
        self.closed.append(handle)
        return 1


def test_on_windows_the_exit_code_decides_and_os_kill_is_never_called(monkeypatch):
    k = _Kernel32({10: 259, 11: 0}, denied={12})
    monkeypatch.setattr(signals, "WINDOWS", True)
    monkeypatch.setattr(ctypes, "WinDLL", lambda name, use_last_error=False: k, raising=False)
    monkeypatch.setattr(ctypes, "get_last_error", lambda: k.error, raising=False)  # Windows only

    def no_kill(pid, sig):
        raise AssertionError("os.kill(pid, 0) on Windows sends CTRL_C_EVENT or ends the process")

    monkeypatch.setattr(os, "kill", no_kill)
    assert signals.process_alive(10)  # STILL_ACTIVE
    assert not signals.process_alive(11)  # exited, handle still held by someone
    assert signals.process_alive(12)  # access denied: another user's, alive
    assert not signals.process_alive(13)  # no such process
    assert k.closed == [1010, 1011]  # every handle opened is closed


@pytest.mark.skipif(os.name == "nt", reason="the POSIX path")
def test_another_users_process_counts_as_alive(monkeypatch):
    def denied(pid, sig):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", denied)
    assert signals.process_alive(1)


def test_every_command_starts_without_posix_only_modules():
    """Windows has no ``resource`` module, no ``os.register_at_fork`` and no ``os.pread``: the CLI and the modules
    behind it must still import and run, the stream's memory trimmer do nothing, and the manifest take lines."""
    code = ("import os, sys, tempfile; del os.register_at_fork; del os.pread; sys.modules['resource'] = None\n"
            "from mmfer.cli import main\n"
            "import mmfer.faces.backends, mmfer.inference.speech, mmfer.bench, mmfer.data.preprocess\n"
            "from mmfer.inference.stream import _FreeMemory\n"
            "from mmfer.process_stats import cpu_seconds, loadavg, peak_rss_mb\n"
            "assert _FreeMemory()._trim is None and cpu_seconds() > 0 and isinstance(peak_rss_mb(), float)\n"
            "loadavg()\n"
            "from mmfer.data.cache import ClipRecord, append_manifest, iter_manifest\n"
            "d = tempfile.mkdtemp()\n"
            "for c in ('a', 'b'):\n"
            "    append_manifest(d, ClipRecord(clip_id=c, split='Train', label=None, path='/x', status='ok'))\n"
            "assert [r.clip_id for r in iter_manifest(d)] == ['a', 'b']\n"
            "main(['--version'])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("mmfer ")
