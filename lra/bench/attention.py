"""Speed of each attention vs sequence length: forward + backward, measured side by side in one run."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import TypeVar

import torch

from lra.attention import ATTENTIONS, build_attention

T = TypeVar("T")


def _csv(kind: Callable[[str], T]) -> Callable[[str], list[T]]:
    """An argparse type for comma-separated values."""

    def parse(text: str) -> list[T]:
        return [kind(item.strip()) for item in text.split(",") if item.strip()]

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="lra bench attention",
        description="Time forward + backward of each attention module (median of repeats after warm-up).",
    )
    parser.add_argument(
        "--attention",
        type=_csv(str),
        default=["softmax", "linear", "nala"],
        help="comma-separated registry names (default: softmax,linear,nala)",
    )
    parser.add_argument(
        "--lengths",
        type=_csv(int),
        default=[1024, 2048, 4096],
        help="comma-separated sequence lengths (default: 1024,2048,4096)",
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    unknown = [name for name in args.attention if name not in ATTENTIONS]
    if unknown:
        parser.error(f"unknown attention(s) {', '.join(unknown)}; known: {', '.join(sorted(ATTENTIONS))}")
    if args.repeats < 1 or args.warmup < 0 or args.batch < 1 or min(args.lengths, default=0) < 1:
        parser.error("--repeats, --batch and --lengths must be >= 1 and --warmup >= 0")
    return args


def time_forward_backward(names: list[str], length: int, args: argparse.Namespace) -> dict[str, float]:
    """Median milliseconds of one forward + backward of each attention on (batch, length, dim).

    The attentions take turns within each repeat, so a busy machine slows them all alike.
    """
    device = torch.device(args.device)
    steps = {}
    for name in names:
        torch.manual_seed(args.seed)
        module = build_attention(name, args.dim, args.heads).to(device)
        x = torch.randn(args.batch, length, args.dim, device=device, requires_grad=True)
        steps[name] = _step(module, x)
    for step in steps.values():
        for _ in range(args.warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.repeats):
        for name, step in steps.items():
            _sync(device)
            start = time.perf_counter()
            step()
            _sync(device)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def _step(module: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        x.grad = None
        module.zero_grad(set_to_none=True)
        module(x).sum().backward()

    return step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    print(
        f"forward+backward, batch={args.batch} dim={args.dim} heads={args.heads} device={device} "
        f"threads={torch.get_num_threads()} median of {args.repeats} after {args.warmup} warm-up"
    )
    # softmax_ms/ms: how many times faster than softmax; ms/linear_ms: how many times slower than linear.
    print(f"{'length':>7} {'attention':>10} {'ms':>10} {'softmax_ms/ms':>14} {'ms/linear_ms':>13}")
    for length in args.lengths:
        ms = time_forward_backward(args.attention, length, args)
        for name, t in ms.items():
            vs_softmax = f"{ms['softmax'] / t:.2f}x" if "softmax" in ms else "-"
            vs_linear = f"{t / ms['linear']:.2f}x" if "linear" in ms else "-"
            print(f"{length:>7} {name:>10} {t:>10.1f} {vs_softmax:>14} {vs_linear:>13}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
