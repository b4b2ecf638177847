"""A suite's results, from the records of its cells: OUT/results.json and OUT/results.md beside the published table.

Per encoder and task: the mean test accuracy over the finished seeds, its sample standard deviation (ddof = 1)
and n. The LRA average of an encoder is the mean of its task means; its spread is sqrt(sum of s_t^2) / T over
those T tasks: the standard deviation one seed's LRA average has when the tasks vary independently (the same, in
expectation, as the spread of per-seed averages, without pairing seeds across tasks, so tasks may have different n).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lra.data.tasks import AVERAGED_TASKS, TASK_TITLES
from lra.files import write_atomically
from lra.suite.budget import shown
from lra.suite.cell import RECORD, read_record
from lra.suite.config import flow

# Test accuracy (%) under protocol 2, the PyTorch protocol of Nyströmformer (Xiong et al. 2021, arXiv 2102.03902)
# as run by the Skyformer code (Chen et al. 2021, arXiv 2111.00035): the rows up to Skyformer as that paper
# publishes them, the later rows from their own papers (Hedgehog; PolaFormer, arXiv 2501.15061; NaLaFormer,
# arXiv 2506.21137, which reports only its average). ListOps, Text, Retrieval, Image, Pathfinder, average.
PUBLISHED: dict[str, tuple[str, ...]] = {  # kept as printed ("61.2", not "61.20"); "—": not reported
    "Transformer (softmax)": ("38.71", "61.55", "80.93", "39.14", "70.39", "58.14"),
    "Kernelized": ("38.46", "60.02", "82.11", "32.63", "69.86", "56.62"),
    "cosFormer": ("37.20", "63.54", "80.28", "35.84", "70.00", "57.37"),
    "Nyströmformer": ("37.95", "62.36", "80.89", "38.94", "69.34", "57.90"),
    "Skyformer": ("38.69", "64.70", "82.06", "40.77", "70.73", "59.39"),
    "Hedgehog": ("37.15", "64.60", "82.24", "40.15", "74.16", "59.66"),
    "PolaFormer (α=3)": ("37.35", "73.06", "80.50", "42.15", "70.53", "60.72"),
    "NaLaFormer": ("—", "—", "—", "—", "—", "61.2"),
}
STATISTICS = {
    "mean": "mean test accuracy over the finished seeds of a task",
    "std": "sample standard deviation over those seeds (ddof = 1; none for n = 1)",
    "average": "the mean of an encoder's task means over the LRA tasks it has",
    "average_std": "sqrt(sum of the task std^2) / number of tasks: the spread of one seed's average",
}


@dataclass(frozen=True)
class Stat:
    """Mean, sample standard deviation (None below two values) and number of values."""

    mean: float
    std: float | None
    n: int


def stat(values: Sequence[float]) -> Stat:
    return Stat(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, len(values))


def lra_average(by_column: Mapping[str, Stat]) -> tuple[Stat | None, list[str]]:
    """The LRA average over the averaged tasks present (n: how many tasks), and which columns it covers."""
    over = [column for column in AVERAGED_TASKS if column in by_column]
    if not over:
        return None, []
    stats = [by_column[column] for column in over]
    stds = [s.std for s in stats if s.std is not None]
    spread = math.sqrt(sum(std**2 for std in stds)) / len(stats) if len(stds) == len(stats) else None
    return Stat(statistics.fmean(s.mean for s in stats), spread, len(stats)), over


def load_records(out: Path) -> dict[str, dict[str, Any]]:
    """Every cell record under the suite folder (OUT/<task>/<encoder>/seed<N>/cell.json), by cell key."""
    records = {}
    for path in sorted(out.glob(f"*/*/seed*/{RECORD}")):
        record = read_record(path.parent)
        if record is not None:
            records[record["cell"]] = record
    return records


def summarize(records: Mapping[str, dict[str, Any]], encoders: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Per encoder (those named first, in order), per task: the statistics of the finished cells, the seeds of the
    others; and the LRA average."""
    order = {name: index for index, name in enumerate(encoders)}
    cells = sorted(records.values(), key=lambda r: (order.get(r["encoder"], len(order)), r["encoder"], r["seed"]))
    table: dict[str, dict[str, Any]] = {}
    for record in cells:
        tasks = table.setdefault(record["encoder"], {"tasks": {}})["tasks"]
        entry = tasks.setdefault(
            record["task"],
            {key: record.get(key) for key in ("column", "protocol", "attention", "overrides", "encoder_overrides")}
            | {"seeds": [], "test_acc": [], "cut_short": [], "unfinished": []},
        )
        if record["status"] == "finished":
            entry["seeds"].append(record["seed"])
            entry["test_acc"].append(record["test_acc"])
        else:
            entry["cut_short" if record["status"] == "cut short" else "unfinished"].append(record["seed"])
    for row in table.values():
        by_column = {}
        for entry in row["tasks"].values():
            finished = stat(entry["test_acc"]) if entry["test_acc"] else None
            entry.update(mean=finished and finished.mean, std=finished and finished.std, n=len(entry["test_acc"]))
            if finished is not None and entry["column"] is not None:
                by_column[entry["column"]] = finished
        average, over = lra_average(by_column)
        row["average"] = {
            "mean": average and average.mean,
            "std": average and average.std,
            "over": over,
            "complete": len(over) == len(AVERAGED_TASKS),
        }
    return table


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """Exclusive use of the suite folder's results (several workers may share the folder)."""
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".results.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_results(out: Path, suite: str, encoders: Sequence[str]) -> dict[str, dict[str, Any]]:
    """results.json and results.md from every cell record in `out` (each written atomically); returns the table."""
    with locked(out):
        records = load_records(out)
        table = summarize(records, encoders)
        recorded = {
            "suite": suite,
            "statistics": STATISTICS,
            "table": table,
            "cells": {key: {k: v for k, v in record.items() if k != "config"} for key, record in records.items()},
        }
        write_atomically(out / "results.json", json.dumps(recorded, indent=2) + "\n")
        write_atomically(out / "results.md", markdown(out, suite, table, records))
    return table


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def _cell_text(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "—"
    if entry["n"] == 0:
        return "cut short" if entry["cut_short"] and not entry["unfinished"] else "pending"
    spread = "" if entry["std"] is None else f" ± {_percent(entry['std'])}"
    return f"{_percent(entry['mean'])}{spread} ({entry['n']})"


def protocol_line(protocols: dict[str, str]) -> str:
    """Which protocol made the numbers, and whether they stand beside the published rows."""
    used = set(protocols.values())
    if used == {"faithful"}:
        return "`faithful`: protocol 2's published code, quirks included, so the rows stand beside the published ones."
    named = ", ".join(f"{task}: `{protocol}`" for task, protocol in protocols.items())
    if used == {"clean"}:
        named = "`clean`"
    return (
        f"{named}. The clean variant corrects the published code (ListOps with `]` as X, no black-pixel mask, "
        "pooling over real tokens, Text validated on a train slice, every test example): its numbers are not "
        'comparable with the published rows, which come from the faithful code (README, "Protocols").'
    )


def settings_line(entries: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """`a, b; text only: c` from (task, overrides shared by the encoders) of every task in the table."""
    every = [overrides for _, overrides in entries]
    common = {key: value for key, value in every[0].items() if all(o.get(key, object()) == value for o in every)}
    groups = [", ".join(f"`{key}={flow(value)}`" for key, value in common.items())] if common else []
    for task, overrides in entries:
        own = [f"`{key}={flow(value)}`" for key, value in overrides.items() if key not in common]
        if own:
            groups.append(f"{task} only: " + ", ".join(own))
    return "; ".join(groups) if groups else "none"


def encoder_line(name: str, tasks: dict[str, dict[str, Any]]) -> str:
    """`` `nala`: attention `nala {alpha: 3.0}` `` with the encoder's own overrides."""
    attentions = {entry["attention"] for entry in tasks.values()}
    if len(attentions) == 1:
        attention = f"attention `{attentions.pop()}`"
    else:
        attention = "attention " + ", ".join(f"{task}: `{entry['attention']}`" for task, entry in tasks.items())
    own = next(iter(tasks.values())).get("encoder_overrides") or {}
    overrides = ", ".join(f"`{key}={flow(value)}`" for key, value in own.items()) or "no overrides"
    return f"`{name}`: {attention} ({overrides})"


def _unfinished_lines(out: Path, records: Mapping[str, dict[str, Any]]) -> list[str]:
    lines = []
    for key, record in records.items():
        status = record["status"]
        if status == "finished":
            continue
        if status == "cut short":
            budget = record.get("cell_budget") if record.get("cut_by") == "cell budget" else None
            why = f"its cell budget ({shown(budget)})" if budget else f"the {record.get('cut_by', 'time limit')}"
            what = f"cut short by {why} at step {record.get('steps')} of {record.get('max_steps')}"
        elif status == "failed":
            what = f"failed ({record.get('error', 'no message')}); log: `{out / key / 'cell.log'}`"
        else:
            what = f"{status} (started {record.get('started')} on {record.get('host')})"
        lines.append(f"- `{key}`: {what}")
    return lines


def markdown(out: Path, suite: str, table: Mapping[str, dict[str, Any]], records: Mapping[str, dict[str, Any]]) -> str:
    """One row per encoder (mean ± std (n) of test accuracy %, pending where none finished) over the published
    protocol-2 rows."""
    columns: dict[str, str | None] = {}
    for row in table.values():
        for task, entry in row["tasks"].items():
            columns.setdefault(task, entry["column"])
    extras = [task for task, column in columns.items() if column == "pathx"]
    extras += [task for task, column in columns.items() if column is None]
    header = [*(TASK_TITLES[c] for c in AVERAGED_TASKS), "avg", *(TASK_TITLES.get(columns[t] or "", t) for t in extras)]
    rows, notes = [], []
    for name, row in table.items():
        by_column = {entry["column"]: entry for entry in row["tasks"].values() if entry["column"] is not None}
        average = row["average"]
        partial = 0 < len(average["over"]) < len(AVERAGED_TASKS)
        spread = "" if average["std"] is None else f" ± {_percent(average['std'])}"
        avg = f"{_percent(average['mean'])}{spread if average['mean'] is not None else ''}" + ("\\*" * partial)
        cells = [*(_cell_text(by_column.get(c)) for c in AVERAGED_TASKS), avg]
        cells += [_cell_text(row["tasks"].get(task)) for task in extras]
        rows.append(f"| **{name}** | {' | '.join(cells)} |")
        if partial:
            titles = ", ".join(TASK_TITLES[column] for column in average["over"])
            notes.append(
                f"\\* The average of {name} covers {len(average['over'])} of the {len(AVERAGED_TASKS)} LRA tasks "
                f"({titles}), so it is not comparable with the published averages over all five."
            )
    for model, published in PUBLISHED.items():
        rows.append(f"| {model} | {' | '.join(published)}{' | —' * len(extras)} |")
    protocols = {
        f"{name} {task}": entry["protocol"] or "faithful"
        for name, row in table.items()
        for task, entry in row["tasks"].items()
    }
    shared: dict[str, dict[str, Any]] = {}
    for row in table.values():
        for task, entry in row["tasks"].items():
            own = entry.get("encoder_overrides") or {}
            overrides = {k: v for k, v in (entry.get("overrides") or {}).items() if own.get(k, object()) != v}
            shared.setdefault(task, overrides)
    seeds = sorted({record["seed"] for record in records.values()})
    lines = [
        "# LRA suite results",
        "",
        f"Suite `{suite}`, run folder `{out}`. Test accuracy (%) of each cell scored from its best-validation "
        "checkpoint: per encoder and task, the mean ± sample standard deviation (ddof = 1) over the finished seeds, "
        "with n in brackets; avg: the mean of the task means ± sqrt(Σ s²) / T (the spread of one seed's average). "
        "Published rows: protocol 2, the PyTorch protocol of Nyströmformer (arXiv 2102.03902) and Skyformer "
        "(arXiv 2111.00035), as published, one seed each (NaLaFormer reports only its average).",
        "",
        f"**Protocol:** {protocol_line(protocols)}",
        "",
        "**Encoders:** " + "; ".join(encoder_line(name, row["tasks"]) for name, row in table.items()) + ".",
        "",
        f"**Overrides of the tasks' YAML** (suite file and --set): {settings_line(list(shared.items()))}.",
        "",
        f"**Seeds:** {', '.join(map(str, seeds))}: the training seed (seed_everything); the data are the same for "
        "every seed.",
        "",
        f"| model | {' | '.join(header)} |",
        "|---|" + "---:|" * len(header),
        *rows,
        "",
        *[line for note in notes for line in (note, "")],
    ]
    if extras:
        lines += [f"{', '.join(header[len(AVERAGED_TASKS) + 1 :])}: beside the table, not in the LRA average.", ""]
    unfinished = _unfinished_lines(out, records)
    if unfinished:
        lines += ["Cells without a test score (not in the numbers above):", "", *unfinished, ""]
    return "\n".join(lines).rstrip() + "\n"
