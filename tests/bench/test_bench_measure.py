"""The measuring kit of `lra bench`: FLOPs, peak memory, out-of-memory errors, timing, the matmul ceiling, malloc."""

from __future__ import annotations

import platform
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from lra.bench.measure import (
    count_flops,
    is_out_of_memory,
    matmul_ceiling,
    peak_cpu_bytes,
    seconds,
)


def test_flops_of_one_matmul_and_of_cpu_sdpa() -> None:
    a, b = torch.randn(3, 5), torch.randn(5, 7)
    assert count_flops(lambda: a @ b) == 2 * 3 * 5 * 7
    q = torch.randn(2, 3, 16, 8)  # (B, H, L, d)
    # Forward: scores q kᵀ and weights·v, each 2·B·H·L·L·d.
    assert count_flops(lambda: F.scaled_dot_product_attention(q, q, q)) == 2 * (2 * 2 * 3 * 16 * 16 * 8)


def test_peak_memory_of_known_allocations() -> None:
    def allocate() -> None:
        a = torch.empty(1000, 1000)  # 4 MB
        b = torch.empty(500, 1000)  # 2 MB: 6 MB held
        del a
        c = torch.empty(1000, 1000)  # 4 MB: 6 MB held again
        del b, c

    assert peak_cpu_bytes(allocate) == 6_000_000
    kept = torch.empty(1000, 1000)  # allocated before: not counted
    assert peak_cpu_bytes(lambda: kept.add_(1.0)) < 100  # (the scalar 1.0 as a tensor)


def test_out_of_memory_errors_are_recognised() -> None:
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 GB"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_matmul_ceiling() -> None:
    assert matmul_ceiling(torch.device("cpu"), torch.float32, repeats=1, size=64) > 0


def test_keep_freed_memory_in_a_fresh_process() -> None:
    code = "from lra.bench.measure import keep_freed_memory; print(keep_freed_memory())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("True" if platform.libc_ver()[0] == "glibc" else "False")


def test_apply_malloc_keeps_freed_memory_only_when_asked_and_glibc_agrees() -> None:
    code = "from lra.bench.measure import apply_malloc; print(apply_malloc('system'), apply_malloc('keep'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["system", "keep" if platform.libc_ver()[0] == "glibc" else "system"]


def test_seconds_times_one_call() -> None:
    calls = []
    elapsed = seconds(lambda: (calls.append(1), time.sleep(0.05)), torch.device("cpu"))
    assert calls == [1] and elapsed >= 0.05
