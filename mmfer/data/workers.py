"""How a clip worker process starts (preprocess's pool, tools/make_video_crops.py's): Ctrl-C left to the parent,
dying with it, one OpenCV thread, the face backend loaded once, a backend the user registered registered again."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from typing import Any

from mmfer.faces.backends import get_backend, register_backend
from mmfer.progress import terminal_log_handler


def die_with_parent(parent: int) -> None:
    """Ask Linux to kill this worker when its parent dies (SIGKILL of the parent included, which no
    handler of the parent's can catch); elsewhere, or if the parent is already gone, nothing / exit."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            PR_SET_PDEATHSIG = 1
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def init_worker(backend_name: str, parent: int | None = None, registered: tuple[str, Any] | None = None) -> None:
    """Worker start-up: Ctrl-C is the parent's job, dies with the parent, one thread per worker, backend
    loaded once (a backend registered by the user's code registered again: a spawned worker starts without it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if parent is not None:
        die_with_parent(parent)
    try:
        import cv2

        cv2.setNumThreads(1)
    except Exception:  # noqa: BLE001
        pass
    if not logging.getLogger().handlers:  # a spawned worker: its warnings as the command line's, escaped
        logging.basicConfig(level=logging.WARNING, handlers=[terminal_log_handler()])
    if registered is not None:
        register_backend(*registered, replace=True)
    get_backend(backend_name)


@contextlib.contextmanager
def opencv_threads_stopped(active: bool):
    """OpenCV's thread pool stopped while workers are forked: a child inherits the pool's state but not its
    threads, and its first parallel call (or ``setNumThreads``) then waits for them forever."""
    if not active:
        yield
        return
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)
