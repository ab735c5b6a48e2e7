"""mmfer inside another application: what a Predictor leaves of the process's state as it found it (torch's random
numbers, signal handlers, BLAS threads, PyAV's log level), and bad arguments said as MmferError."""

from __future__ import annotations

import signal

import pytest
import torch

from mmfer.errors import MmferError
from mmfer.predict import Predictor, predict
from predict_helpers import standin_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return standin_bundle(tmp_path_factory.mktemp("standin"))


def test_the_applications_torch_random_numbers_are_left_as_they_were(bundle, cremad_audio, cremad_videos):
    """Building the models (their random start, overwritten by the weights) and each file's loader drew from
    torch's global generator: an application that seeds torch for its own sampling got other numbers."""
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    p = Predictor(bundle, speech_check=False)
    p.predict_file(cremad_audio[0])
    p.predict_file(cremad_videos[0])
    assert torch.equal(torch.rand(3), expected)


def test_signal_handlers_are_not_swapped_where_nothing_forks(bundle, cremad_audio, monkeypatch):
    """Every warm-up and clip swapped SIGINT/SIGTERM for a holding handler and back; a handler Python could not
    put back (a host program's, set in C) was lost or left on the holding one. Only a loader that forks swaps."""
    swapped = []
    real = signal.signal
    monkeypatch.setattr(signal, "signal", lambda sig, handler: swapped.append(sig) or real(sig, handler))
    p = Predictor(bundle, speech_check=False)
    p.predict_file(cremad_audio[0])
    assert swapped == []
    from torch.utils.data import DataLoader

    from mmfer.signals import start_iter

    assert list(start_iter(DataLoader(list(range(4)), batch_size=2))) and swapped == []


def test_blas_threads_can_be_left_to_the_application(bundle):
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas():
        return sorted(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

    with threadpool_limits(limits=2, user_api="blas"):
        before = blas()
        if max(before) < 2:
            pytest.skip("this machine's BLAS runs one thread: nothing to tell apart")
        Predictor(bundle, speech_check=False, blas_threads=None)
        assert blas() == before  # as set by the application
        Predictor(bundle, speech_check=False)  # the default: one thread, for mmfer's small matrices
        assert set(blas()) == {1}


def test_pyav_log_level_is_the_applications(bundle, cremad_videos):
    import av.logging

    av.logging.set_level(av.logging.WARNING)
    try:
        Predictor(bundle, speech_check=False).predict_file(cremad_videos[0])
        assert av.logging.get_level() == av.logging.WARNING
    finally:
        av.logging.set_level(None)


def test_bad_arguments_from_python_are_said_as_mmfer_errors(bundle, cremad_audio, tmp_path):
    """They were ValueError, TypeError, or a shard (5, 2) that silently predicted nothing."""
    for kwargs in ({"start": "abc"}, {"start": None}, {"duration": "5"}, {"start": float("nan")}):
        with pytest.raises(MmferError, match="--start|--duration"):
            Predictor(bundle, speech_check=False, **kwargs)
    with pytest.raises(MmferError, match="model None: give 'default' or the path"):
        Predictor(None)
    with pytest.raises(MmferError, match=r"--shard '5/2': need 0 <= i < n"):
        predict(cremad_audio[:1], model=bundle, shard=(5, 2), progress=False)
    with pytest.raises(MmferError, match="give a file or folder path"):
        predict(b"x.mp4", model=bundle, progress=False)
    with pytest.raises(MmferError, match="input 3 is not a path"):
        predict([cremad_audio[0], 3], model=bundle, progress=False)
    with pytest.raises(MmferError, match=r"--shard 3: give 'i/n' or \(i, n\)"):
        predict(cremad_audio[:1], model=bundle, shard=3, progress=False)
    for threads in (0, -1, "x", True):
        with pytest.raises(MmferError, match="blas_threads="):
            Predictor(bundle, speech_check=False, blas_threads=threads)
    with pytest.raises(MmferError, match="--start"):
        Predictor(bundle, speech_check=False, start=10 ** 400)
    assert Predictor(bundle, speech_check=False, start=1, duration=2).duration == 2.0
