"""The harness's figures, drawn with matplotlib: line panels (log-log for `lra bench attention`, linear for the
suite's validation curves, with shaded bands) and grouped bars with error bars (the suite's table).

Each series keeps one colour (matplotlib's tab10 cycle, in order of first appearance) across a figure's panels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib import colors, ticker
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

PALETTE: tuple[tuple[int, int, int], ...] = tuple(
    tuple(round(255 * channel) for channel in colors.to_rgb(f"tab:{name}"))  # type: ignore[misc]
    for name in ("blue", "orange", "green", "red", "purple", "brown", "pink", "gray", "olive", "cyan")
)
WHITE = (255, 255, 255)
DPI = 100


@dataclass
class Panel:
    """One plot: `series` maps a line's name to its (x, y) points (y None leaves a gap); `bands` an optional shaded
    (x, low, high) range around it; `log`: both axes logarithmic."""

    title: str
    xlabel: str
    ylabel: str
    series: dict[str, list[tuple[float, float | None]]] = field(default_factory=dict)
    bands: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)
    log: bool = True


def colour_of(names: Sequence[str]) -> dict[str, str]:
    """A colour per name, in order (tab10 cycled)."""
    return {name: colors.to_hex(tuple(c / 255 for c in PALETTE[i % len(PALETTE)])) for i, name in enumerate(names)}


def _figure(size: tuple[int, int]) -> Figure:
    return Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI, layout="constrained", facecolor="white")


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, facecolor="white")
    return path


def _segments(points: list[tuple[float, float | None]], log: bool) -> list[list[tuple[float, float]]]:
    """Runs of drawable points in x order (a None, or a non-positive value on a log axis, breaks the line)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in sorted(points, key=lambda point: point[0]):
        if y is None or (log and (x <= 0 or y <= 0)):
            runs.append([])
        else:
            runs[-1].append((x, y))
    return [run for run in runs if run]


def render(panels: Sequence[Panel], path: str | Path, size: tuple[int, int] = (1200, 500)) -> Path:
    """The panels side by side with one legend underneath, saved as a PNG of `size` pixels at `path`."""
    figure = _figure(size)
    names = list(dict.fromkeys(name for panel in panels for name in panel.series))
    colour = colour_of(names)
    axes = figure.subplots(1, max(1, len(panels)), squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=False):
        ax.set_title(panel.title, fontsize=11)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        runs = {name: _segments(points, panel.log) for name, points in panel.series.items()}
        if not any(runs.values()):
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, fontsize=14)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        if panel.log:
            ax.set_xscale("log")
            ax.set_yscale("log")
        for name, segments in runs.items():
            for segment in segments:
                xs, ys = zip(*segment, strict=True)
                ax.plot(xs, ys, color=colour[name], linewidth=2, marker="o", markersize=4)
            band = sorted(panel.bands.get(name, []))
            if band:
                xs, lows, highs = zip(*band, strict=True)
                ax.fill_between(xs, lows, highs, color=colour[name], alpha=0.2, linewidth=0)
        measured = sorted({x for segments in runs.values() for segment in segments for x, _ in segment})
        if panel.log and len(measured) <= 8:  # ticks at the measured lengths, written out (1024, not 10^3)
            ax.set_xticks(measured)
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        if panel.log:
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        ax.grid(True, which="major", color="#e1e1e1")
    if names:
        handles = [Line2D([], [], color=colour[name], linewidth=3) for name in names]
        figure.legend(handles, names, loc="outside lower center", ncols=min(len(names), 8), frameon=False)
    return _save(figure, path)


def bar_chart(
    groups: Sequence[str],
    series: dict[str, list[tuple[float | None, float | None]]],
    path: str | Path,
    title: str,
    ylabel: str,
    size: tuple[int, int] = (1100, 480),
) -> Path:
    """Grouped bars: one group per label in `groups`, one bar per series with its (height, error) in each group
    (height None: no bar; error None: no error bar), the height written above each bar."""
    figure = _figure(size)
    ax = figure.subplots()
    colour = colour_of(list(series))
    width = 0.8 / max(1, len(series))
    for index, (name, values) in enumerate(series.items()):
        offset = (index - (len(series) - 1) / 2) * width
        for group, (height, error) in enumerate(values):
            if height is None:
                continue
            x = group + offset
            ax.bar(
                x,
                height,
                width,
                color=colour[name],
                label=name if name not in ax.get_legend_handles_labels()[1] else None,
            )
            if error is not None:
                ax.errorbar(x, height, yerr=error, color="black", capsize=3, linewidth=1)
            ax.annotate(f"{height:.1f}", (x, height + (error or 0)), ha="center", va="bottom", fontsize=7,
                        xytext=(0, 2), textcoords="offset points")  # fmt: skip
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(True, axis="y", color="#e1e1e1")
    ax.set_axisbelow(True)
    if series:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _save(figure, path)
