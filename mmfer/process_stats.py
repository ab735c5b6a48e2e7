"""What this process and its children cost while a benchmark stage runs: CPU seconds, peak resident set, load.

POSIX measures (``resource``, /proc); where the system has none (Windows has no ``resource`` module and no
load average) a figure is measured more coarsely or is None, and importing this module never fails.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]


def cpu_seconds() -> float:
    """User + system CPU of this process (all threads) and of its finished, waited-for children (pool workers);
    this process alone where the system cannot count children."""
    if resource is None:
        return time.process_time()
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def vm_hwm_mb(pid: int | str = "self") -> float | None:
    """Peak resident set of one process from /proc (Linux): unlike ru_maxrss it is not inflated by the parent's
    size at fork, which Linux carries across exec."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_mb() -> float | None:
    hwm = vm_hwm_mb()
    if hwm is not None:
        return hwm
    if resource is None:
        return None
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)  # bytes on macOS, KiB on Linux


class ChildPeaks:
    """Polls this process's children (pool and loader workers) for their peak resident set while a stage runs.

    Forked children (DataLoader workers) count the pages they share with their parent too.
    """

    def __init__(self, every: float = 0.2):
        import threading

        self.peak: float | None = None
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mmfer-bench-rss", daemon=True)

    def _children(self) -> list[str]:
        pids: list[str] = []
        for f in Path("/proc/self/task").glob("*/children"):
            try:
                pids += f.read_text(encoding="utf-8").split()
            except OSError:
                pass
        return pids

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self._every)

    def poll(self) -> None:
        for pid in self._children():
            hwm = vm_hwm_mb(pid)
            if hwm is not None and (self.peak is None or hwm > self.peak):
                self.peak = hwm

    def __enter__(self) -> "ChildPeaks":
        if Path("/proc/self/task").is_dir():
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):  # none on Windows
        return None
