"""SIGTERM (``kill``, ``timeout``, a container stop) ends a command the way Ctrl-C does: as a KeyboardInterrupt in
the main thread, so finished work is written and the command exits 130 instead of dying where it stood."""

from __future__ import annotations

import atexit
import os
import select
import signal
import sys
import threading
import weakref
from typing import Any


def sigterm_as_interrupt() -> Any:
    """Make SIGTERM raise KeyboardInterrupt in this (main) thread; returns the previous handler (to put back
    with ``signal.signal(signal.SIGTERM, old)``), or None where handlers cannot be set (not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):  # noqa: ANN001 - the signal module's signature
        raise KeyboardInterrupt(f"signal {signum}")

    return signal.signal(signal.SIGTERM, interrupt)



STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
WINDOWS = os.name == "nt"


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs (a lock's owner), another user's included."""
    if WINDOWS:  # there os.kill(pid, 0) sends CTRL_C_EVENT or ends the process: never a question
        return _windows_process_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True


def _windows_process_alive(pid: int) -> bool:
    """OpenProcess and its exit code: STILL_ACTIVE while it runs; access denied means it exists (another
    user's or a protected one)."""
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    handle = kernel32.OpenProcess(0x1000, False, int(pid))  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.get_last_error() == 5  # ERROR_ACCESS_DENIED; otherwise no such process
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True  # cannot tell: treat as alive, as a lock's owner must not be taken from a live one
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def start_iter(iterable: Any) -> Any:
    """``iter(iterable)`` with Ctrl-C and SIGTERM held back until it returns. A DataLoader forks its workers
    there, and a KeyboardInterrupt raised inside fork's at-fork hooks is printed ("Exception ignored in
    _releaseLock") and lost: the stop was swallowed and training went on. Held back, it is sent again just
    after, to the handlers in force, where it stops the command as usual. (The handlers are swapped rather than the signals masked: Python runs
    handlers in the main thread whichever thread the signal reached, and other threads do not share a mask.)"""
    if (threading.current_thread() is not threading.main_thread() or not getattr(iterable, "num_workers", 0)
            or any(signal.getsignal(sig) is None for sig in STOP_SIGNALS)):
        return iter(iterable)  # nothing forks, or a handler Python cannot put back (a C host's)
    held: list[int] = []

    def hold(signum, frame):  # noqa: ANN001 - the signal module's signature
        held.append(signum)

    old = {sig: signal.signal(sig, hold) for sig in STOP_SIGNALS}
    try:
        it = iter(iterable)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    _remember_workers(it)
    for sig in held:  # delivered again to the handlers in force: a stop as usual, an ignored one still ignored
        signal.raise_signal(sig)
    return it


_LOADER_WORKERS: "weakref.WeakSet[Any]" = weakref.WeakSet()  # worker processes of loaders start_iter started


def _end_stuck_loader_workers() -> None:
    """At exit, a worker of a loader that start_iter started, still alive after its loader shut down, is stuck: one
    hung inside C code never runs its Python SIGTERM handler (seed_worker lets the first SIGTERM pass), so
    multiprocessing's own exit, terminate() then join(), would wait on it forever. They get one second together,
    then SIGKILL. No other process is touched. Registered when the first such loader starts, so after
    multiprocessing's exit hook, and run before it."""
    import time

    deadline = time.monotonic() + 1.0
    for worker in list(_LOADER_WORKERS):
        worker.join(timeout=max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            worker.kill()


_HOOKED: list[bool] = []


def _remember_workers(it: Any) -> None:
    """Note a started loader's worker processes for the exit hook (registered with the first of them)."""
    workers = getattr(it, "_workers", None)
    if workers:
        if not _HOOKED:
            atexit.register(_end_stuck_loader_workers)
            _HOOKED.append(True)
        _LOADER_WORKERS.update(workers)


def stdout_reader_gone() -> bool:
    """Whether a BrokenPipeError (SIGPIPE, which Python ignores) came from stdout, i.e. stdout is a pipe whose reader has gone (the write
    end then polls POLLERR), rather than from some other pipe, whose failure must still show."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # stdout replaced by an object without a descriptor
        return False
    if not hasattr(select, "poll"):  # Windows: trust the error
        return True
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
