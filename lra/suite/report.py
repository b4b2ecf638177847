"""A suite's results: OUT/results.json (per task, kept across resumes) and OUT/results.md beside the published table."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lra.data.tasks import AVERAGED_TASKS, TASK_TITLES
from lra.files import write_atomically
from lra.overrides import ConfigError
from lra.suite.config import SuiteTask, flow

if TYPE_CHECKING:
    from lra.training.run import TaskRun

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


@dataclass
class SuiteResults:
    """What a suite folder holds: finished tasks (`done`) and tasks that began training (`started`, by digest)."""

    out: Path
    suite: str = ""
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: dict[str, str] = field(default_factory=dict)

    @property
    def json_path(self) -> Path:
        return self.out / "results.json"

    @classmethod
    def load(cls, out: Path, suite: str) -> SuiteResults:
        """The results recorded in `out` (none yet when there is no results.json)."""
        path = out / "results.json"
        if not path.is_file():
            return cls(out, suite)
        try:
            recorded = json.loads(path.read_text())
            return cls(out, suite, dict(recorded["tasks"]), dict(recorded.get("started", {})))
        except (ValueError, KeyError, TypeError) as error:
            raise ConfigError(f"{path}: not a suite's results.json ({error}); use --out DIR for a new suite") from error

    def check(self, tasks: Sequence[SuiteTask]) -> None:
        """Refuse a task recorded (finished, or part-trained with a last.ckpt) with another config than now."""
        for task in tasks:
            recorded = self.done.get(task.name, {}).get("config_digest")
            partial = self.out / task.name / "checkpoints" / "last.ckpt"
            if recorded is None and partial.is_file():
                recorded = self.started.get(task.name)
            if recorded is not None and recorded != task.digest:
                raise ConfigError(
                    f"{self.json_path}: task {task.name!r} was run here with another config (digest {recorded}, "
                    f"now {task.digest}: the suite file, --set or {task.config_path} changed); "
                    f"use --out DIR for a new suite folder, or delete {self.out / task.name} to retrain the task"
                )

    def start(self, task: SuiteTask) -> None:
        self.started[task.name] = task.digest

    def finish(self, task: SuiteTask, run: TaskRun) -> dict[str, Any]:
        record = {
            **run.to_dict(),
            "config": str(task.config_path),
            "config_digest": task.digest,
            "column": task.column,
            "protocol": task.protocol,
            "attention": task.attention,
            "overrides": task.overrides,
        }
        self.done[task.name] = record
        self.started.pop(task.name, None)
        return record

    def average(self) -> tuple[float | None, list[str]]:
        """The mean test accuracy over the finished tasks among the five LRA tasks, and which tasks those are."""
        covered = {record["column"]: name for name, record in self.done.items() if record["column"] in AVERAGED_TASKS}
        over = [covered[column] for column in AVERAGED_TASKS if column in covered]
        if not over:
            return None, []
        return statistics.fmean(self.done[name]["test_acc"] for name in over), over

    def save(self, tasks: Sequence[SuiteTask]) -> None:
        """Write results.json and results.md (each atomically); `tasks` are this run's, in order."""
        value, over = self.average()
        recorded = {
            "suite": self.suite,
            "tasks": self.done,
            "started": self.started,
            "average": value,
            "average_over": over,
            "average_complete": len(over) == len(AVERAGED_TASKS),
        }
        write_atomically(self.json_path, json.dumps(recorded, indent=2) + "\n")
        write_atomically(self.out / "results.md", markdown(self, tasks))


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def settings_line(entries: Sequence[tuple[str, str, dict[str, Any]]]) -> str:
    """`attention ...; overrides ...` from (task, attention, overrides) of every task in the table."""
    attentions = {attention for _, attention, _ in entries}
    if len(attentions) == 1:
        line = f"attention `{attentions.pop()}`"
    else:
        line = "attention " + ", ".join(f"{task}: `{attention}`" for task, attention, _ in entries)
    every = [overrides for _, _, overrides in entries]
    common = {key: value for key, value in every[0].items() if all(o.get(key, object()) == value for o in every)}
    groups = [", ".join(f"`{key}={flow(value)}`" for key, value in common.items())] if common else []
    for task, _, overrides in entries:
        own = [f"`{key}={flow(value)}`" for key, value in overrides.items() if key not in common]
        if own:
            groups.append(f"{task} only: " + ", ".join(own))
    settings = "; ".join(groups) if groups else "none"
    return f"{line}. Overrides of the tasks' YAML (suite file and --set): {settings}"


def protocol_line(protocols: dict[str, str]) -> str:
    """Which protocol made the numbers, and whether they stand beside the published rows."""
    used = set(protocols.values())
    if used == {"faithful"}:
        return "`faithful`: protocol 2's published code, quirks included, so the row stands beside the published ones."
    named = ", ".join(f"{task}: `{protocol}`" for task, protocol in protocols.items())
    if used == {"clean"}:
        named = "`clean`"
    return (
        f"{named}. The clean variant corrects the published code (ListOps with `]` as X, no black-pixel mask, "
        "pooling over real tokens, Text validated on a train slice, every test example): its numbers are not "
        'comparable with the published rows, which come from the faithful code (README, "Protocols").'
    )


def markdown(results: SuiteResults, tasks: Sequence[SuiteTask]) -> str:
    """This run's row (test accuracy %, pending where not finished) over the published protocol-2 rows."""
    current = {task.name: task for task in tasks}
    names = [*current, *(name for name in results.done if name not in current)]
    columns = {name: (current[name].column if name in current else results.done[name]["column"]) for name in names}
    by_column = {column: name for name, column in columns.items() if column is not None}
    extras = [by_column["pathx"]] if "pathx" in by_column else []
    extras += [name for name, column in columns.items() if column is None]

    def cell(name: str | None) -> str:
        if name is None:
            return "—"
        if name in results.done:
            return _percent(100 * results.done[name]["test_acc"])
        return "pending"

    value, over = results.average()
    partial = 0 < len(over) < len(AVERAGED_TASKS)
    average = _percent(None if value is None else 100 * value) + ("\\*" if partial else "")
    header = [
        *(TASK_TITLES[column] for column in AVERAGED_TASKS),
        "avg",
        *(TASK_TITLES.get(columns[n] or "", n) for n in extras),
    ]
    ours = [*(cell(by_column.get(column)) for column in AVERAGED_TASKS), average, *(cell(name) for name in extras)]
    rows = [f"| **this run** | {' | '.join(ours)} |"]
    for model, published in PUBLISHED.items():
        rows.append(f"| {model} | {' | '.join(published)}{' | —' * len(extras)} |")
    entries = [
        (name, current[name].attention, current[name].overrides)
        if name in current
        else (name, results.done[name]["attention"], results.done[name]["overrides"])
        for name in names
    ]
    protocols = {
        name: current[name].protocol if name in current else results.done[name].get("protocol", "faithful")
        for name in names
    }
    lines = [
        "# LRA suite results",
        "",
        f"Suite `{results.suite}`, run folder `{results.out}`. Test accuracy (%) of each task, scored from its "
        "best-validation checkpoint; published rows: protocol 2, the PyTorch protocol of Nyströmformer "
        "(arXiv 2102.03902) and Skyformer (arXiv 2111.00035), as published (NaLaFormer reports only its average).",
        "",
        f"**Protocol:** {protocol_line(protocols)}",
        "",
        f"**This run:** {settings_line(entries)}.",
        "",
        f"| model | {' | '.join(header)} |",
        "|---|" + "---:|" * len(header),
        *rows,
        "",
    ]
    if partial:
        names_over = ", ".join(TASK_TITLES[results.done[name]["column"]] for name in over)
        lines += [
            f"\\* The average covers {len(over)} of the {len(AVERAGED_TASKS)} LRA tasks ({names_over}), "
            "so it is not comparable with the published averages over all five.",
            "",
        ]
    if extras:
        lines.append(f"{', '.join(header[len(AVERAGED_TASKS) + 1 :])}: beside the table, not in the LRA average.")
    return "\n".join(lines).rstrip() + "\n"
