"""The speed line of `lra check attention`: an attention's forward + backward time and peak memory beside softmax
and linear at a few lengths, measured with `lra bench attention`'s kit (lra.bench.measure and its Step)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from lra.attention import build_attention
from lra.bench.attention import Step
from lra.bench.measure import free, is_out_of_memory, peak_bytes, seconds
from lra.check.conformance import Subject

REFERENCES = ("softmax", "linear")


@dataclass
class Speed:
    """One length: median milliseconds and peak MB per attention (absent: it ran out of memory)."""

    length: int
    ms: dict[str, float] = field(default_factory=dict)
    mb: dict[str, float] = field(default_factory=dict)


def measure_speed(subject: Subject, lengths: list[int], batch: int, repeats: int, warmup: int) -> list[Speed]:
    """The subject ("this") and the REFERENCES at each length: warm-up, one step for peak memory, then timed
    repeats in which the attentions take turns, so that machine load slows them alike (as `lra bench attention`)."""
    device = torch.device(subject.device)
    builders: dict[str, Callable[[], nn.Module]] = {"this": subject.build}
    for name in REFERENCES:
        builders[name] = lambda name=name: build_attention(name, subject.dim, subject.heads).to(device)
    speeds = []
    for length in lengths:
        speed, steps = Speed(length), {}
        for label, build in builders.items():
            try:
                torch.manual_seed(subject.seed)
                x = torch.randn(batch, length, subject.dim, device=device, requires_grad=True)
                step = Step(build().train(), x, None)
                for _ in range(warmup):
                    step()
                step.reset()
                speed.mb[label] = peak_bytes(step, device) / 2**20
                steps[label] = step
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                free(device)
        times: dict[str, list[float]] = {label: [] for label in steps}
        for _ in range(repeats):
            for label in list(steps):
                try:
                    times[label].append(seconds(steps[label], device) * 1e3)
                except Exception as error:
                    if not is_out_of_memory(error):
                        raise
                    del steps[label], speed.mb[label]
                    free(device)
        speed.ms = {label: statistics.median(times[label]) for label in steps}
        steps.clear()
        free(device)
        speeds.append(speed)
    return speeds


def speed_table(speeds: list[Speed]) -> str:
    """One row per length: ms and peak MB of this attention, softmax and linear; softmax's time / this one's
    (times faster) and this one's / linear's."""
    header = ("length", "this ms", "softmax ms", "linear ms", "vs softmax", "vs linear", "peak MB this/softmax/linear")
    rows = [header]
    for s in speeds:
        ms = [f"{s.ms[label]:.1f}" if label in s.ms else "oom" for label in ("this", *REFERENCES)]
        mb = "/".join(f"{s.mb[label]:.0f}" if label in s.mb else "oom" for label in ("this", *REFERENCES))
        faster = f"{s.ms['softmax'] / s.ms['this']:.2f}×" if {"this", "softmax"} <= set(s.ms) else "-"
        slower = f"{s.ms['this'] / s.ms['linear']:.2f}" if {"this", "linear"} <= set(s.ms) else "-"
        rows.append((str(s.length), *ms, faster, slower, mb))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(f"{cell:>{widths[i]}}" for i, cell in enumerate(row)) for row in rows)
