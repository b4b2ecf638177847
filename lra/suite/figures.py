"""The suite's pictures, under OUT/figures: table.png (the table as bars with error bars) and curves.png (each task's
validation accuracy over training steps, encoders overlaid: the mean over seeds, shaded ± one standard deviation),
read from the records and the cells' TensorBoard event files."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lra.data.tasks import AVERAGED_TASKS, TASK_TITLES
from lra.plots import Panel, bar_chart, render
from lra.suite.config import FIGURES

VAL_TAG = "val/acc"


def scalar_curve(folder: Path, tag: str = VAL_TAG) -> dict[int, float]:
    """step -> value of one scalar in a run folder's event files (a continued run's later value wins)."""
    curve: dict[int, float] = {}
    for events in sorted(folder.glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        if tag in accumulator.Tags()["scalars"]:
            curve.update({event.step: event.value for event in accumulator.Scalars(tag)})
    return curve


def validation_curves(out: Path, records: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, list[dict[int, float]]]]:
    """task -> encoder -> each seed's validation curve (every recorded cell with events: cut-short ones too)."""
    curves: dict[str, dict[str, list[dict[int, float]]]] = {}
    for key, record in records.items():
        curve = scalar_curve(out / key)
        if curve:
            curves.setdefault(record["task"], {}).setdefault(record["encoder"], []).append(curve)
    return curves


Band = list[tuple[float, float, float]]


def mean_curve(seeds: list[dict[int, float]]) -> tuple[list[tuple[float, float | None]], Band]:
    """The mean over the seeds at each step any of them reached, and the ± one sample std band where two or more did."""
    points: list[tuple[float, float | None]] = []
    band: Band = []
    for step in sorted({step for curve in seeds for step in curve}):
        values = [100 * curve[step] for curve in seeds if step in curve]
        mean = statistics.fmean(values)
        points.append((step, mean))
        if len(values) > 1:
            spread = statistics.stdev(values)
            band.append((step, mean - spread, mean + spread))
    return points, band


def _bar(mean: float | None, std: float | None) -> tuple[float | None, float | None]:
    """(height, error) in percent; None where there is no value."""
    return (None if mean is None else 100 * mean, None if std is None else 100 * std)


def table_chart(table: Mapping[str, dict[str, Any]], path: Path) -> Path:
    """Test accuracy (%) per task and the LRA average, a bar per encoder, error bars ± one sample std."""
    entries = [entry for row in table.values() for entry in row["tasks"].values() if entry["n"]]
    columns = [column for column in AVERAGED_TASKS if any(entry["column"] == column for entry in entries)]
    series: dict[str, list[tuple[float | None, float | None]]] = {}
    for name, row in table.items():
        by_column = {entry["column"]: entry for entry in row["tasks"].values() if entry["n"]}
        bars = [_bar(by_column[c]["mean"], by_column[c]["std"]) if c in by_column else (None, None) for c in columns]
        series[name] = [*bars, _bar(row["average"]["mean"], row["average"]["std"])]
    groups = [*(TASK_TITLES[column] for column in columns), "LRA average"]
    title = "LRA test accuracy: mean ± sample std over seeds (average: mean of task means)"
    return bar_chart(groups, series, path, title, "test accuracy (%)")


def curves_chart(curves: Mapping[str, dict[str, list[dict[int, float]]]], path: Path) -> Path:
    """One panel per task: validation accuracy (%) against training steps, a line (and band) per encoder."""
    panels = []
    for task, by_encoder in curves.items():
        panel = Panel(TASK_TITLES.get(task, task), "training step", "validation accuracy (%)", log=False)
        for encoder, seeds in by_encoder.items():
            panel.series[encoder], band = mean_curve(seeds)
            if band:
                panel.bands[encoder] = band
        panels.append(panel)
    return render(panels, path, size=(max(500, 420 * len(panels)), 420))


def draw(out: Path, table: Mapping[str, dict[str, Any]], records: Mapping[str, dict[str, Any]]) -> list[Path]:
    """OUT/figures/table.png and OUT/figures/curves.png (the latter once any cell has logged a validation)."""
    folder = out / FIGURES
    drawn = [table_chart(table, folder / "table.png")]
    curves = validation_curves(out, records)
    if curves:
        drawn.append(curves_chart(curves, folder / "curves.png"))
    return drawn
