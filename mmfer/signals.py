"""SIGTERM (``kill``, ``timeout``, a container stop) ends a command the way Ctrl-C does: as a KeyboardInterrupt in
the main thread, so finished work is written and the command exits 130 instead of dying where it stood."""

from __future__ import annotations

import signal
import threading
from typing import Any


def sigterm_as_interrupt() -> Any:
    """Make SIGTERM raise KeyboardInterrupt in this (main) thread; returns the previous handler (to put back
    with ``signal.signal(signal.SIGTERM, old)``), or None where handlers cannot be set (not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):  # noqa: ANN001 - the signal module's signature
        raise KeyboardInterrupt(f"signal {signum}")

    return signal.signal(signal.SIGTERM, interrupt)
