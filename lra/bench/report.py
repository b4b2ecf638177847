"""The report of `lra bench attention`: the printed tables (ratios to softmax and linear, FLOP/s, growth
exponents), the CSV and the log-log plot, from one Result per attention and length."""

from __future__ import annotations

import argparse
import csv
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from lra.plots import Panel, render

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
TABLE_HEADER = (
    f"{'length':>7} {'attention':>12} {'status':>7} {'ms':>10} {'vs softmax':>10} {'vs linear':>9} "
    f"{'peak MB':>9} {'vs softmax':>10} {'vs linear':>9}"
)


@dataclass
class Result:
    """One attention at one length: status is ok, oom (ran out of memory) or skipped (--skip)."""

    attention: str
    length: int
    status: str = "ok"
    ms: float | None = None
    peak_mb: float | None = None
    gflop: float | None = None


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


def print_rows(table: list[dict[str, object]]) -> None:
    for row in table:
        print(
            f"{row['length']:>7} {row['attention']:>12} {row['status']:>7} {_cell(row['ms'], '.1f'):>10} "
            f"{_cell(row['softmax_ms_per_ms'], '.2f', 'x'):>10} {_cell(row['ms_per_linear_ms'], '.2f', 'x'):>9} "
            f"{_cell(row['peak_mb'], '.1f'):>9} {_cell(row['softmax_mb_per_mb'], '.2f', 'x'):>10} "
            f"{_cell(row['mb_per_linear_mb'], '.2f', 'x'):>9}",
            flush=True,
        )


def print_flops(table: list[dict[str, object]], ceiling: float, size: int, args: argparse.Namespace) -> None:
    """FLOPs and FLOP/s of each row against ``ceiling``, the FLOP/s of a ``size``² matmul."""
    print("\nFLOPs of one forward+backward counted by torch.utils.flop_counter (matmuls and SDPA; element-wise")
    print(
        f"work counts 0); ceiling = the best {args.dtype} {size}x{size} matmul in this run: {ceiling / 1e9:.1f} GFLOP/s"
    )
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
