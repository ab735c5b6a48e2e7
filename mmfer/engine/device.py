"""Where and in what precision a model runs: the device choice and the CPU/GPU precision rules that training,
scoring, prediction and ``mmfer bench`` share."""

from __future__ import annotations

import contextlib
import functools
import logging
import threading

import torch
from torch import nn

from mmfer.errors import MmferError

log = logging.getLogger(__name__)


def resolve_device(device: str | torch.device | None, preferred: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without one is an error a user can fix."""
    name = str(device) if device is not None else preferred
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise MmferError(f"unknown device {name!r}: choose auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MmferError(f"device {name!r} requested but CUDA is not available here; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise MmferError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s), cuda:0 "
                         f"to cuda:{torch.cuda.device_count() - 1}")
    if dev.type not in ("cpu", "cuda"):  # mps, xla, ...: torch knows the name, mmfer runs on neither
        raise MmferError(f"device {name!r}: mmfer runs on cpu or cuda (auto picks one)")
    return dev


def one_blas_thread(threads: int = 1) -> None:
    """Limit the BLAS libraries loaded so far (numpy's and scipy's OpenBLAS) to one thread (or ``threads``), for
    the process.

    Why: after each numpy matrix product OpenBLAS's threads keep spinning, and on a 2-core CPU they take a core
    from the torch ops that follow. Measured in predict: five audio CNNs on a 2.3-s clip took 50 ms after the
    audio statistics' features (numpy) had run and 28 ms with one BLAS thread. mmfer's numpy matrices are small,
    so the threads buy nothing. Torch's own threads are not affected."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=int(threads), user_api="blas")



def torch_runs_on_openmp() -> bool:
    """Whether torch's CPU threads are OpenMP's: then ``torch.set_num_threads`` sets the calling thread's own
    count (and the default that threads take at their first torch op), not every thread's."""
    return "parallel backend: OpenMP" in torch.__config__.parallel_info()


def _in_a_new_thread(fn):
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn()), name="mmfer-threads")
    thread.start()
    thread.join()
    return out[0]


@contextlib.contextmanager
def torch_threads_kept():
    """torch's thread counts after the block as before it: the calling thread's own, and the default that a
    thread takes at its first torch op (``torch.set_num_threads`` anywhere sets that default too, so a library
    that sets it while imported, or a thread put on one thread, would otherwise leave every later thread there)."""
    own = torch.get_num_threads()
    default = _in_a_new_thread(torch.get_num_threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != own:
            torch.set_num_threads(own)
        if _in_a_new_thread(torch.get_num_threads) != default:
            _in_a_new_thread(lambda: torch.set_num_threads(default))

@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products in hardware (AMX or AVX512-BF16).

    Why it matters: there bf16 autocast trains convolutional nets about 2-3 times faster than fp32; on
    other CPUs bf16 is emulated and slower than fp32.
    """
    return bool(_cpu_flags() & {"amx_bf16", "avx512_bf16"})


def training_precision(device: torch.device, amp: bool, model: nn.Module | None = None) -> str:
    """What ``amp: true`` means on this device: "fp16" on CUDA, "bf16" on a CPU with native bf16, else "fp32".

    One exception: 3D convolutions stay fp32 on a CPU with AVX512-BF16 but no AMX. There, bf16 Conv3d
    training turned the loss to NaN within a few steps once the process had changed its thread count
    (torch 2.11, oneDNN; 2D models were unaffected), and its speed was never measured to pay.
    """
    if not amp:
        return "fp32"
    if device.type == "cuda":
        return "fp16"
    if device.type == "cpu" and cpu_has_native_bf16():
        if model is not None and not cpu_has_amx() and any(isinstance(m, nn.Conv3d) for m in model.modules()):
            log.info("3D convolutions train in fp32 on this CPU (bf16 without AMX is not trusted for them)")
            return "fp32"
        return "bf16"
    return "fp32"


_NOTED: list[bool] = []


def precision_note(device: torch.device, amp: bool, precision: str) -> str:
    """Why ``amp: true`` trains in fp32 on this CPU, for the run's log ("" where it does not): users who saw bf16
    on one machine would otherwise not know why another is about 3 times slower per step."""
    if not (amp and precision == "fp32" and device.type == "cpu") or cpu_has_native_bf16() or _NOTED:
        return ""
    _NOTED.append(True)  # once a process: a --folds run would say it again for every fold
    return (" (amp is on, but this CPU has no native bf16, neither avx512_bf16 nor amx_bf16 in /proc/cpuinfo; "
            "emulated bf16 would be slower still, so steps take about 3 times as long as on a CPU that has it)")


def cpu_has_amx() -> bool:
    return "amx_bf16" in _cpu_flags()


def cpu_vector_units() -> str:
    """The CPU's widest vector units as figures depend on them ("AVX-512, AMX" or "AVX2"; "" where not known):
    the same 2 cores ran predict's face CNNs about twice as fast with AVX-512 as with AVX2 (BENCHMARKS.md)."""
    flags = _cpu_flags()
    widest = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else ""  # (x86's /proc/cpuinfo flags)
    extra = [name for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16")) if flag in flags]
    return ", ".join([widest, *extra] if widest else extra)


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def autocast(device: torch.device, precision: bool | str):
    """Autocast for ``precision`` ("fp16", "bf16" or "fp32"); ``True`` means fp16 on CUDA and nothing on CPU."""
    if precision is True:
        precision = "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
