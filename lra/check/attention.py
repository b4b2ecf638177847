"""`lra check attention ATTENTION`: the conformance kit on an attention (built-in name, "package.module:Class" or an
installed entry-point name), a pass/fail table with the measured error of each check, then a speed line.

Exit status: 0 when every check passes, 1 when one fails, 2 when the attention cannot be found or built.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
import yaml

from lra.bench.measure import apply_malloc
from lra.check.conformance import Subject, run_checks, table
from lra.check.speed import measure_speed, speed_table

CPU_SPEED_LENGTHS = [1024, 4096]
CUDA_SPEED_LENGTHS = [1024, 4096, 16384]


def _lengths(text: str) -> list[int]:
    try:
        lengths = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated lengths, e.g. 1024,4096") from None
    if any(length < 1 for length in lengths):
        raise argparse.ArgumentTypeError(f"{text!r}: lengths must be >= 1")
    return lengths


def _kwargs(text: str) -> dict[str, Any]:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = None
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a YAML mapping of options, e.g. '{{alpha: 2.0}}'")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="lra check attention",
        description="Run the conformance kit (shape and dtype, padding invariance, bf16 autocast, gradients, a "
        "long sequence, eval determinism, linear vs quadratic form) and print a pass/fail table with the measured "
        "error of each check, then the time and peak memory of forward + backward beside softmax and linear.",
    )
    parser.add_argument(
        "attention", help="a built-in name (nala), a class by import path (mypkg.layers:MyAttention) or an installed "
        "entry-point name (group lra.attentions)",
    )  # fmt: skip
    parser.add_argument("--kwargs", type=_kwargs, default={}, help="its options as YAML, e.g. '{alpha: 2.0}'")
    parser.add_argument("--dim", type=int, default=64, help="model width (default 64: LRA's protocol)")
    parser.add_argument("--heads", type=int, default=2, help="heads (default 2: head dim 32, LRA's protocol)")
    parser.add_argument("--device", default=None, choices=("cpu", "cuda"), help="default: cuda when available")
    parser.add_argument("--long-length", type=int, default=4096, help="the long sequence's length (default 4096)")
    parser.add_argument(
        "--speed-lengths", type=_lengths, default=None,
        help="lengths of the speed line (default 1024,4096,16384 on CUDA; 1024,4096 on CPU, where softmax at 16384 "
        "takes about 20 s per step)",
    )  # fmt: skip
    parser.add_argument("--no-speed", action="store_true", help="leave the speed line out")
    parser.add_argument("--batch", type=int, default=8, help="sequences per step of the speed line (default 8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per length (median; default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    args.default_speed_lengths = args.speed_lengths is None
    if args.speed_lengths is None:
        args.speed_lengths = CUDA_SPEED_LENGTHS if args.device == "cuda" else CPU_SPEED_LENGTHS
    if min(args.dim, args.heads, args.long_length, args.batch, args.repeats) < 1 or args.warmup < 0:
        parser.error("--dim, --heads, --long-length, --batch and --repeats must be >= 1 and --warmup >= 0")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    args.error = parser.error
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    subject = Subject(args.attention, args.kwargs, args.dim, args.heads, args.device, args.long_length, args.seed)
    try:
        module = subject.build()
    except Exception as error:  # not found, not an attention class, a bad option: one line, exit 2
        args.error(
            str(error) if isinstance(error, ValueError) else f"building it failed: {type(error).__name__}: {error}"
        )
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads or threads)
    try:
        run(args, subject, type(module).__qualname__)
    finally:
        torch.set_num_threads(threads)
    return 1 if args.failed else 0


def run(args: argparse.Namespace, subject: Subject, class_name: str) -> None:
    """Print the table and the speed line; ``args.failed`` says whether a check failed."""
    options = f" {yaml.safe_dump(args.kwargs, default_flow_style=True).strip()}" if args.kwargs else ""
    print(f"{args.attention}{options} ({class_name}): dim {args.dim}, heads {args.heads}, device {args.device}")
    results = run_checks(subject)
    print(table(results))
    failed = [r.check for r in results if r.failed]
    args.failed = bool(failed)
    if failed:
        print(f"{len(failed)} of {len(results)} checks FAILED: {', '.join(failed)}")
    else:
        skipped = sum(r.status == "skip" for r in results)
        print(f"all {len(results) - skipped} checks passed" + (f" ({skipped} skipped)" if skipped else ""))
    if args.no_speed or not args.speed_lengths:
        return
    if failed:
        print("\nspeed line skipped: fix the failed checks first")
        return
    malloc = apply_malloc("keep") if args.device == "cpu" else "-"
    print(
        f"\nspeed: forward + backward, batch {args.batch}, float32, {args.device}, threads {torch.get_num_threads()}, "
        f"median of {args.repeats} after {args.warmup} warm-up (the three take turns); vs softmax: softmax's time / "
        "this one's (times faster); vs linear: this one's / linear's"
    )
    if malloc == "keep":
        print("CPU tensors: freed memory is kept for reuse (like CUDA's caching allocator), as in lra bench attention")
    if args.default_speed_lengths and args.device == "cpu":
        print("16384 is left out on CPU by default (softmax takes about 20 s a step there); --speed-lengths adds it")
    print(speed_table(measure_speed(subject, args.speed_lengths, args.batch, args.repeats, args.warmup)))
