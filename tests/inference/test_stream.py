"""The thread that scores a short clip's sound beside its frames."""

from __future__ import annotations

import torch

from mmfer.inference.stream import sound_thread


def test_the_sound_thread_computes_alone_and_leaves_the_callers_threads():
    """A sound thread with a team of OpenMP threads of its own made the speech check of every sound file about
    four times slower (more OpenMP threads than cores); it computes on one thread, and the caller keeps its count."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        inside = sound_thread().submit(torch.get_num_threads).result(timeout=60)
        assert torch.get_num_threads() == 2
        openmp = "parallel backend: OpenMP" in torch.__config__.parallel_info()
        assert inside == (1 if openmp else 2)
    finally:
        torch.set_num_threads(before)
