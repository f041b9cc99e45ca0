"""Where the model runs and in which precision.

bf16 halves memory and, on hardware that computes it natively, time. CUDA reports its
support; a CPU is checked by running bf16 (AVX-512 BF16 or AMX make it about twice as
fast as fp32; without them bf16 is emulated and slower), never assumed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from functools import cache

import torch


def choose_device(preference: str = "auto") -> str:
    if preference != "auto":
        if preference == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("model.device is 'cuda' but no CUDA device is available")
        return preference
    return "cuda" if torch.cuda.is_available() else "cpu"


@cache
def cpu_runs_bf16() -> bool:
    """True when this CPU multiplies bf16 matrices at least about as fast as fp32."""
    a = torch.randn(384, 384)
    b = torch.randn(384, 384)
    timings = {}
    for dtype in (torch.float32, torch.bfloat16):
        x, y = a.to(dtype), b.to(dtype)
        x @ y  # warm up
        started = time.perf_counter()
        for _ in range(8):
            product = x @ y
        timings[dtype] = time.perf_counter() - started
        if not torch.isfinite(product).all():
            return False
    return timings[torch.bfloat16] <= 1.2 * timings[torch.float32]


def choose_precision(device: str, preference: str = "auto") -> str:
    """bf16-true on CUDA with bf16 and on CPUs that run it; fp32 otherwise."""
    if preference != "auto":
        return preference
    if device == "cuda":
        return "bf16-true" if torch.cuda.is_bf16_supported() else "32-true"
    return "bf16-true" if cpu_runs_bf16() else "32-true"


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def release_memory() -> None:
    """Hand freed heap memory back to the system (glibc only; elsewhere a no-op).

    Training allocates activations of a different shape for every batch; glibc keeps
    the freed pieces, and a long CPU run grows by gigabytes without this."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
