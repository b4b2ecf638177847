"""The measuring kit of `lra bench`: malloc policy, device sync and timing, peak memory, FLOP counting, the matmul
ceiling and out-of-memory recognition (shared by `lra bench attention` and `lra bench train`)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import math
import os
import time
from collections.abc import Callable, Iterator

import torch
import torch.utils.flop_counter as flop_counter
from torch.profiler import ProfilerActivity, profile

MEMORY_METHOD = {
    "cpu": "CPU peak = the most tensor memory allocated at once during one forward + backward (PyTorch's CPU "
    "allocator as tracked by torch.profiler(profile_memory=True); inputs and weights excluded, MKL/oneDNN "
    "scratch not counted)",
    "cuda": "CUDA peak = torch.cuda.max_memory_allocated during one forward + backward, minus what was "
    "allocated before it (inputs and weights excluded)",
}
MALLOC = {
    "keep": "CPU tensors: glibc malloc keeps freed memory for reuse (like CUDA's caching allocator); "
    "--malloc system returns it to the OS, so each large tensor costs fresh zeroed pages",
    "system": "CPU tensors: the system malloc as configured (glibc returns each freed block of 32 MB or more "
    "to the OS, so each large tensor costs fresh zeroed pages)",
}


def _cpu_sdpa_flops(query_shape: torch.Size, key_shape: torch.Size, value_shape: torch.Size, *_, **__) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward_flops(
    grad_shape: torch.Size, query_shape: torch.Size, key_shape: torch.Size, value_shape: torch.Size, *_, **__
) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_shape, query_shape, key_shape, value_shape)


# torch's FLOP counter knows SDPA's CUDA kernels only: count its CPU flash kernel with the same torch formulas.
CPU_SDPA_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward_flops,
}


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to serve every block from its heap and keep freed memory for reuse; False if not glibc.

    By default glibc maps each block of 32 MB or more afresh and unmaps it when freed, so every large
    temporary costs page faults and zeroing by the kernel; at 16k tokens that is half the time of a
    linear attention's step. This is what jemalloc or tcmalloc (PyTorch's CPU tuning advice) also avoid.
    """
    m_trim_threshold, m_mmap_max = -1, -4  # glibc's mallopt parameters
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError, TypeError):
        return False


def apply_malloc(requested: str) -> str:
    """Put a --malloc choice (a MALLOC key) in force for CPU tensors; return the policy now in force.

    "keep" holds only where glibc's mallopt agreed (keep_freed_memory); otherwise the system malloc stays.
    """
    return "keep" if requested == "keep" and keep_freed_memory() else "system"


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's failure ("can't allocate memory")."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; the CPU needs no wait)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(fn: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of one call of ``fn``, from an idle device until its work is done."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def free(device: torch.device) -> None:
    """Collect garbage and, on CUDA, hand cached blocks back (after an out-of-memory error, between lengths)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (kineto prints a line on every profiler start and stop)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_cpu_bytes(fn: Callable[[], object]) -> int:
    """The most tensor bytes PyTorch's CPU allocator held at once while ``fn`` ran, beyond what was held before.

    torch.profiler(profile_memory=True) records every allocation and free (of blocks allocated while it
    ran) with its size; the peak is the largest running sum of those sizes, in time order.
    """
    from torch._C._profiler import _EventType

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr():
        prof.start()
    try:
        fn()
    finally:
        with _quiet_stderr():
            prof.stop()
    changes, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        if event.tag == _EventType.Allocation and event.extra_fields.device.type == "cpu":
            changes.append((event.start_time_ns, event.extra_fields.alloc_size))  # bytes, < 0 for a free
        stack.extend(event.children)
    peak = held = 0
    for _, change in sorted(changes):
        held += change
        peak = max(peak, held)
    return peak


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak tensor memory of ``fn`` beyond what was allocated before it (see MEMORY_METHOD)."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    return peak_cpu_bytes(fn)


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of the matmul-like ops ``fn`` runs (torch.utils.flop_counter; element-wise work counts 0)."""
    with flop_counter.FlopCounterMode(display=False, custom_mapping=CPU_SDPA_FLOPS) as counter:
        fn()
    return counter.get_total_flops()


def ceiling_size(device: torch.device) -> int:
    """The side of the square matmul that measures the ceiling: large enough to reach the peak rate."""
    return 2048 if device.type == "cpu" else 8192


def matmul_ceiling(device: torch.device, dtype: torch.dtype, repeats: int = 5, size: int | None = None) -> float:
    """FLOP/s of a large square matmul in ``dtype``, the best of ``repeats``: the practical ceiling."""
    n = size or ceiling_size(device)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b  # warm-up
    best = math.inf
    for _ in range(repeats):
        best = min(best, seconds(lambda: a @ b, device))
    return 2 * n**3 / best
