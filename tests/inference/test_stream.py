"""The thread that scores a short clip's sound beside its frames, and torch's thread counts around it."""

from __future__ import annotations

import threading

import pytest
import torch

import mmfer.inference.stream as stream
from mmfer.engine.device import torch_runs_on_openmp, torch_threads_kept


def _new_thread_count() -> int:
    out = []
    t = threading.Thread(target=lambda: out.append(torch.get_num_threads()))
    t.start()
    t.join()
    return out[0]


@pytest.mark.skipif(not torch_runs_on_openmp(), reason="per-thread counts need torch on OpenMP")
def test_the_sound_thread_computes_alone_and_every_other_thread_keeps_its_count(monkeypatch):
    """A sound thread with a team of OpenMP threads of its own made the speech check of every sound file about
    four times slower (more OpenMP threads than cores). It computes on one thread; the caller, and threads
    started after it (a server's workers), keep theirs (setting the sound thread's count first set the default
    every new thread takes)."""
    before = torch.get_num_threads()
    monkeypatch.setattr(stream, "_SOUND_THREAD", None)  # a sound thread of this test's own
    torch.set_num_threads(2)
    try:
        made = stream.sound_thread()
        assert made.submit(torch.get_num_threads).result(timeout=60) == 1
        assert torch.get_num_threads() == 2 and _new_thread_count() == 2
        made.shutdown()
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not torch_runs_on_openmp(), reason="per-thread counts need torch on OpenMP")
def test_thread_counts_are_kept_around_a_block_that_sets_them():
    """Importing silero_vad sets torch to one thread for the whole process."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch_threads_kept():
            torch.set_num_threads(1)
            assert _new_thread_count() == 1  # what the block did reaches new threads ...
        assert torch.get_num_threads() == 2 and _new_thread_count() == 2  # ... and is undone after it
    finally:
        torch.set_num_threads(before)
