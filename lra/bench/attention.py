"""`lra bench attention`: time, peak memory and FLOP/s of each attention's forward + backward vs sequence length.

Everything is measured in one run, so the ratios compare attentions under the same machine load: the attentions
take turns within each timed repeat, and the matmul ceiling is timed in the same process. The measuring kit is
lra.bench.measure; the tables, CSV and plot are lra.bench.report.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from lra.attention import ATTENTIONS, build_attention
from lra.bench.measure import (
    MALLOC,
    MEMORY_METHOD,
    apply_malloc,
    ceiling_size,
    count_flops,
    free,
    is_out_of_memory,
    matmul_ceiling,
    peak_bytes,
    seconds,
)
from lra.bench.report import TABLE_HEADER, Result, plot, print_flops, print_growth, print_rows, rows, write_csv

T = TypeVar("T")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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
            free(device)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name in list(steps):
            try:
                ms = seconds(steps[name], device) * 1e3
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                results[name].status = "oom"
                del steps[name]
                free(device)
                continue
            times[name].append(ms)
    for name in steps:
        results[name].ms = statistics.median(times[name])
    steps.clear()
    free(device)
    return [results[name] for name in names]


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
        args.malloc = apply_malloc(args.malloc)
        print(MALLOC[args.malloc])
    else:
        args.malloc = "-"
    print("vs softmax: softmax's value / this one (times faster, times less memory); vs linear: this / linear's")
    size = ceiling_size(device)
    ceiling = matmul_ceiling(device, DTYPES[args.dtype], size=size)
    print(TABLE_HEADER)
    table: list[dict[str, object]] = []
    for length in args.lengths:
        rows_now = rows(measure_length(names, length, args), ceiling, args)
        print_rows(rows_now)
        table += rows_now
    print_flops(table, ceiling, size, args)
    print_growth(table, names)
    stem = f"attention-{args.device}-{args.dtype}" + ("-compile" if args.compile else "")
    csv_path = write_csv(table, args.out / f"{stem}.csv")
    png_path = plot(table, names, args.out / f"{stem}.png", settings)
    print(f"\nwrote {csv_path} and {png_path}")


if __name__ == "__main__":
    raise SystemExit(main())
