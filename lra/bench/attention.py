"""`lra bench attention`: time, peak memory and FLOP/s of each attention's forward + backward vs sequence length.

Everything is measured in one run, so the ratios compare attentions under the same machine load: the attentions
take turns within each timed repeat, and the matmul ceiling is timed in the same process.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import ctypes
import ctypes.util
import gc
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

import torch
import torch.utils.flop_counter as flop_counter
from torch import nn
from torch.profiler import ProfilerActivity, profile

from lra.attention import ATTENTIONS, build_attention
from lra.bench.plot import Panel, render

T = TypeVar("T")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CSV_COLUMNS = (
    "length",
    "attention",
    "status",
    "ms",
    "softmax_ms_per_ms",
    "ms_per_linear_ms",
    "peak_mb",
    "softmax_mb_per_mb",
    "mb_per_linear_mb",
    "gflop",
    "gflop_per_s",
    "ceiling_fraction",
    "batch",
    "dim",
    "heads",
    "device",
    "dtype",
    "compile",
    "threads",
    "malloc",
)
MEMORY_METHOD = {
    "cpu": "CPU peak = the most tensor memory allocated at once during one forward + backward (PyTorch's CPU "
    "allocator as tracked by torch.profiler(profile_memory=True); inputs and weights excluded, MKL/oneDNN "
    "scratch not counted)",
    "cuda": "CUDA peak = torch.cuda.max_memory_allocated during one forward + backward, minus what was "
    "allocated before it (inputs and weights excluded)",
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


MALLOC = {
    "keep": "CPU tensors: glibc malloc keeps freed memory for reuse (like CUDA's caching allocator); "
    "--malloc system returns it to the OS, so each large tensor costs fresh zeroed pages",
    "system": "CPU tensors: the system malloc as configured (glibc returns each freed block of 32 MB or more "
    "to the OS, so each large tensor costs fresh zeroed pages)",
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


def _csv(kind: Callable[[str], T]) -> Callable[[str], list[T]]:
    """An argparse type for comma-separated values."""

    def parse(text: str) -> list[T]:
        return [kind(item.strip()) for item in text.split(",") if item.strip()]

    return parse


def _skip_entry(text: str) -> tuple[str, int]:
    name, sep, length = text.partition("@")
    if not sep or not length.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME@LENGTH, e.g. softmax@16384")
    return name, int(length)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="lra bench attention",
        description="Forward + backward time (median of repeats after warm-up), peak memory and FLOP/s of "
        "each attention at each sequence length, in one run; writes CSV and PNG under --out.",
    )
    parser.add_argument(
        "--attention",
        type=_csv(str),
        default=None,
        help=f"comma-separated registry names (default: all registered: {','.join(ATTENTIONS)})",
    )
    parser.add_argument(
        "--lengths",
        type=_csv(int),
        default=[1024, 2048, 4096, 8192, 16384],
        help="comma-separated sequence lengths (default: 1024,2048,4096,8192,16384)",
    )
    parser.add_argument("--batch", type=int, default=8, help="sequences per step (default 8)")
    parser.add_argument("--dim", type=int, default=64, help="model width (default 64: LRA's protocol)")
    parser.add_argument("--heads", type=int, default=2, help="heads (default 2: head dim 32, LRA's protocol)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument(
        "--dtype", default="float32", choices=tuple(DTYPES), help="float32, or autocast to bfloat16/float16"
    )
    parser.add_argument("--compile", action="store_true", help="time torch.compile'd modules")
    parser.add_argument(
        "--malloc",
        default="keep",
        choices=tuple(MALLOC),
        help="CPU: keep freed memory for reuse (default) or leave the system malloc as it is",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per attention and length (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (also compile, if --compile)")
    parser.add_argument(
        "--skip",
        type=_csv(_skip_entry),
        default=[],
        help="NAME@LENGTH pairs not to run, e.g. softmax@16384 (reported as skipped)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's, all cores)"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench"), help="folder for the CSV and PNG")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.attention is None:
        args.attention = list(ATTENTIONS)
    unknown = sorted({name for name in args.attention + [name for name, _ in args.skip] if name not in ATTENTIONS})
    if unknown:
        parser.error(f"unknown attention(s) {', '.join(unknown)}; known: {', '.join(sorted(ATTENTIONS))}")
    if args.repeats < 1 or args.warmup < 0 or args.batch < 1 or not args.lengths or min(args.lengths) < 1:
        parser.error("--repeats, --batch and --lengths must be >= 1 and --warmup >= 0")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    return args


@dataclass
class Result:
    """One attention at one length: status is ok, oom (ran out of memory) or skipped (--skip)."""

    attention: str
    length: int
    status: str = "ok"
    ms: float | None = None
    peak_mb: float | None = None
    gflop: float | None = None


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's failure ("can't allocate memory")."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        _sync(device)
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
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


class Step:
    """One forward + backward of ``module`` on ``x``, under autocast to ``autocast`` if given."""

    def __init__(self, module: nn.Module, x: torch.Tensor, autocast: torch.dtype | None) -> None:
        self.module, self.x, self.autocast = module, x, autocast

    def reset(self) -> None:
        """Drop the previous step's gradients (so that a measured step starts from inputs and weights only)."""
        self.x.grad = None
        self.module.zero_grad(set_to_none=True)

    def __call__(self) -> None:
        self.reset()
        with torch.autocast(self.x.device.type, dtype=self.autocast, enabled=self.autocast is not None):
            y = self.module(self.x)
        y.float().sum().backward()


def measure_length(names: list[str], length: int, args: argparse.Namespace) -> list[Result]:
    """Every attention at one length: warm-up, one instrumented step (memory, FLOPs), then timed repeats.

    The attentions take turns within each repeat, so a busy machine slows them all alike. An attention
    that runs out of memory is reported as such and leaves the rotation.
    """
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    autocast = None if dtype == torch.float32 else dtype
    skipped = set(args.skip)
    results = {name: Result(name, length) for name in names}
    steps: dict[str, Step] = {}
    for name in names:
        if (name, length) in skipped:
            results[name].status = "skipped"
            continue
        try:
            torch.manual_seed(args.seed)
            module = build_attention(name, args.dim, args.heads).to(device)
            x = torch.randn(args.batch, length, args.dim, device=device, requires_grad=True)
            timed = torch.compile(module) if args.compile else module
            step = Step(timed, x, autocast)
            for _ in range(args.warmup):
                step()
            step.reset()
            results[name].peak_mb = peak_bytes(step, device) / 2**20
            results[name].gflop = count_flops(Step(module, x, autocast)) / 1e9
            steps[name] = step
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            results[name].status = "oom"
            _free(device)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name in list(steps):
            try:
                _sync(device)
                start = time.perf_counter()
                steps[name]()
                _sync(device)
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                results[name].status = "oom"
                del steps[name]
                _free(device)
                continue
            times[name].append((time.perf_counter() - start) * 1e3)
    for name in steps:
        results[name].ms = statistics.median(times[name])
    steps.clear()
    _free(device)
    return [results[name] for name in names]


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def rows(results: list[Result], ceiling: float, args: argparse.Namespace) -> list[dict[str, object]]:
    """CSV rows (CSV_COLUMNS): each result with its ratios to softmax and linear at the same length."""
    by_key = {(r.attention, r.length): r for r in results}
    out = []
    for r in results:
        softmax, linear = by_key.get(("softmax", r.length)), by_key.get(("linear", r.length))
        flop_rate = _ratio(r.gflop * 1e9 if r.gflop is not None else None, r.ms / 1e3 if r.ms else None)
        out.append(
            {
                **{k: v for k, v in asdict(r).items() if k in CSV_COLUMNS},
                "softmax_ms_per_ms": _ratio(softmax and softmax.ms, r.ms),
                "ms_per_linear_ms": _ratio(r.ms, linear and linear.ms),
                "softmax_mb_per_mb": _ratio(softmax and softmax.peak_mb, r.peak_mb),
                "mb_per_linear_mb": _ratio(r.peak_mb, linear and linear.peak_mb),
                "gflop_per_s": flop_rate / 1e9 if flop_rate is not None else None,
                "ceiling_fraction": _ratio(flop_rate, ceiling),
                "batch": args.batch,
                "dim": args.dim,
                "heads": args.heads,
                "device": args.device,
                "dtype": args.dtype,
                "compile": args.compile,
                "threads": torch.get_num_threads(),
                "malloc": args.malloc,
            }
        )
    return out


def _cell(value: object, spec: str, suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:{spec}}{suffix}"


def exponent(points: list[tuple[int, float | None]]) -> float | None:
    """The log-log slope between the first and last measured points: k in value ∝ length^k."""
    measured = [(x, y) for x, y in points if y]
    if len(measured) < 2 or measured[0][0] == measured[-1][0]:
        return None
    (x0, y0), (x1, y1) = measured[0], measured[-1]
    return math.log(y1 / y0) / math.log(x1 / x0)


TABLE_HEADER = (
    f"{'length':>7} {'attention':>12} {'status':>7} {'ms':>10} {'vs softmax':>10} {'vs linear':>9} "
    f"{'peak MB':>9} {'vs softmax':>10} {'vs linear':>9}"
)


def print_rows(table: list[dict[str, object]]) -> None:
    for row in table:
        print(
            f"{row['length']:>7} {row['attention']:>12} {row['status']:>7} {_cell(row['ms'], '.1f'):>10} "
            f"{_cell(row['softmax_ms_per_ms'], '.2f', 'x'):>10} {_cell(row['ms_per_linear_ms'], '.2f', 'x'):>9} "
            f"{_cell(row['peak_mb'], '.1f'):>9} {_cell(row['softmax_mb_per_mb'], '.2f', 'x'):>10} "
            f"{_cell(row['mb_per_linear_mb'], '.2f', 'x'):>9}",
            flush=True,
        )


def print_flops(table: list[dict[str, object]], ceiling: float, args: argparse.Namespace) -> None:
    n = ceiling_size(torch.device(args.device))
    print("\nFLOPs of one forward+backward counted by torch.utils.flop_counter (matmuls and SDPA; element-wise")
    print(f"work counts 0); ceiling = the best {args.dtype} {n}x{n} matmul in this run: {ceiling / 1e9:.1f} GFLOP/s")
    print(f"{'length':>7} {'attention':>12} {'GFLOP':>9} {'GFLOP/s':>9} {'of ceiling':>10}")
    for row in table:
        print(
            f"{row['length']:>7} {row['attention']:>12} {_cell(row['gflop'], '.3f'):>9} "
            f"{_cell(row['gflop_per_s'], '.1f'):>9} {_cell(row['ceiling_fraction'], '.1%'):>10}"
        )


def print_growth(table: list[dict[str, object]], names: list[str]) -> None:
    print("\ngrowth from the shortest to the longest measured length: value ∝ length^k (1: linear, 2: quadratic)")
    print(f"{'attention':>12} {'k time':>7} {'k memory':>9} {'k FLOPs':>8}")
    for name in names:
        mine = [row for row in table if row["attention"] == name]
        ks = [exponent([(row["length"], row[key]) for row in mine]) for key in ("ms", "peak_mb", "gflop")]
        print(f"{name:>12} {_cell(ks[0], '.2f'):>7} {_cell(ks[1], '.2f'):>9} {_cell(ks[2], '.2f'):>8}")


def write_csv(table: list[dict[str, object]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in table:
            writer.writerow({k: "" if row[k] is None else row[k] for k in CSV_COLUMNS})
    return path


def plot(table: list[dict[str, object]], names: list[str], path: Path, subtitle: str) -> Path:
    """Time and peak memory vs length, log-log, one line per attention (out-of-memory points left out)."""
    panels = [
        Panel(f"forward+backward time ({subtitle})", "sequence length", "ms"),
        Panel(f"peak memory ({subtitle})", "sequence length", "MB"),
    ]
    for panel, key in zip(panels, ("ms", "peak_mb"), strict=True):
        for name in names:
            panel.series[name] = [(row["length"], row[key]) for row in table if row["attention"] == name]
    return render(panels, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads or threads)
    try:
        run(args)
    finally:
        torch.set_num_threads(threads)
    return 0


def run(args: argparse.Namespace) -> None:
    """Measure, print the tables, write the CSV and the plot."""
    device = torch.device(args.device)
    names = args.attention
    settings = f"batch={args.batch} dim={args.dim} heads={args.heads} device={device} dtype={args.dtype}"
    settings += " compiled" if args.compile else ""
    print(
        f"forward+backward, {settings} threads={torch.get_num_threads()}, "
        f"median of {args.repeats} after {args.warmup} warm-up (attentions take turns within each repeat)"
    )
    print(MEMORY_METHOD[device.type])
    if device.type == "cpu":
        args.malloc = "keep" if args.malloc == "keep" and keep_freed_memory() else "system"
        print(MALLOC[args.malloc])
    else:
        args.malloc = "-"
    print("vs softmax: softmax's value / this one (times faster, times less memory); vs linear: this / linear's")
    ceiling = matmul_ceiling(device, DTYPES[args.dtype])
    print(TABLE_HEADER)
    table: list[dict[str, object]] = []
    for length in args.lengths:
        rows_now = rows(measure_length(names, length, args), ceiling, args)
        print_rows(rows_now)
        table += rows_now
    print_flops(table, ceiling, args)
    print_growth(table, names)
    stem = f"attention-{args.device}-{args.dtype}" + ("-compile" if args.compile else "")
    csv_path = write_csv(table, args.out / f"{stem}.csv")
    png_path = plot(table, names, args.out / f"{stem}.png", settings)
    print(f"\nwrote {csv_path} and {png_path}")


if __name__ == "__main__":
    raise SystemExit(main())
