"""mmfer.engine.device: the process-wide thread settings that prediction relies on."""

from __future__ import annotations

import os
import re

import pytest

from mmfer.errors import MmferError

from predict_helpers import standin_bundle


def _blas_threads() -> dict[str, int]:
    from threadpoolctl import threadpool_info

    return {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_a_predictor_leaves_every_blas_library_on_one_thread(tmp_path):
    """OpenBLAS's spinning threads took a core from the models that followed; scipy brings an OpenBLAS of its
    own, loaded by the audio statistics' warm-up after numpy's."""
    import scipy.fft  # noqa: F401 - loads scipy's OpenBLAS, as the audio statistics do
    from threadpoolctl import threadpool_limits

    from mmfer.predict import Predictor

    threadpool_limits(limits=2, user_api="blas")
    if (os.cpu_count() or 1) >= 2:
        assert max(_blas_threads().values()) == 2
    Predictor(standin_bundle(tmp_path))
    threads = _blas_threads()
    assert len(threads) >= 1 and set(threads.values()) == {1}, threads


def test_an_unknown_device_name_is_a_message_naming_the_choices():
    import pytest
    import torch

    from mmfer.engine.device import resolve_device
    from mmfer.errors import MmferError

    with pytest.raises(MmferError, match="unknown device 'gpu': choose auto, cpu, cuda or cuda:N"):
        resolve_device("gpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name, said", [
    ("mps", "device 'mps': mmfer runs on cpu or cuda"),  # torch knows it: a raw traceback came later before
    ("xla", "device 'xla': mmfer runs on cpu or cuda"),
    ("cuda:0:1", "unknown device 'cuda:0:1'"),  # was "CUDA is not available"
    ("gpu", "unknown device 'gpu'"),
])
def test_devices_mmfer_cannot_use_are_said_before_any_work(name, said):
    from mmfer.engine.device import resolve_device

    with pytest.raises(MmferError, match=re.escape(said)):
        resolve_device(name)
