"""The grid of a suite: one cell per (task, encoder, seed), each a training run with its own folder and config."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lra.overrides import ConfigError, apply_overrides, digest
from lra.suite.config import SuiteConfig, SuiteTask, suite_tasks

# Keys set per run, not part of what a cell is: a re-run with a larger budget continues the same cell.
RUN_KEYS = (("trainer", "max_time"), ("trainer", "enable_progress_bar"))
IMPLICIT = "default"  # the encoder's name when the suite file has no `encoders:` and the tasks differ in attention


@dataclass(frozen=True)
class Cell:
    """One training run of the table: a task config with the suite's and the encoder's overrides, and a seed."""

    task: SuiteTask  # its config has every override but the seed
    encoder: str
    seed: int  # the training seed (seed_everything); the data are the same for every seed
    encoder_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """`listops/nala/seed0`: the cell's folder under the suite folder, and its name everywhere."""
        return f"{self.task.name}/{self.encoder}/seed{self.seed}"

    def folder(self, out: Path) -> Path:
        return out / self.key

    @property
    def config(self) -> dict[str, Any]:
        """The config the cell trains with (before its run keys: budget, progress bar)."""
        return apply_overrides(self.task.config, {"seed_everything": self.seed}, self.key)

    @property
    def digest(self) -> str:
        """Identifies what the cell trains: a recorded cell is continued or reused only while this is unchanged."""
        return digest(without_run_keys(self.config))


def without_run_keys(config: Mapping[str, Any]) -> dict[str, Any]:
    """`config` without the keys each run sets for itself (RUN_KEYS)."""
    result = copy.deepcopy(dict(config))
    for section, key in RUN_KEYS:
        if isinstance(result.get(section), dict):
            result[section].pop(key, None)
    return result


def attention_name(config: Mapping[str, Any]) -> str | None:
    """The registry name of a config's attention (None for a per-layer list)."""
    name = (config.get("model") or {}).get("attention")
    return name if isinstance(name, str) else None


def encoders_of(suite: SuiteConfig, cli_set: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The suite's encoders; without `encoders:`, one named after the attention every task trains (or `default`)."""
    if suite.encoders is not None:
        return suite.encoders
    names = {attention_name(task.config) for task in suite_tasks(suite, cli_set)}
    name = names.pop() if len(names) == 1 else None
    return {name or IMPLICIT: {}}


def seed_of(task: SuiteTask, where: Path) -> int:
    """A task config's own seed_everything, the cell's seed when the suite file gives no `seeds:`."""
    seed = task.config.get("seed_everything")
    if type(seed) is not int:
        raise ConfigError(
            f"{where}: seeds: not given, and task {task.name!r} has seed_everything {seed!r}, not an integer; "
            "give the seeds, e.g. seeds: [0, 1, 2]"
        )
    return seed


def grid_cells(suite: SuiteConfig, cli_set: Mapping[str, Any]) -> list[Cell]:
    """Every cell, seed by seed (so the table fills one seed at a time), then task by task, then encoder by encoder."""
    encoders = encoders_of(suite, cli_set)
    by_encoder = {name: suite_tasks(suite, cli_set, (name, overrides)) for name, overrides in encoders.items()}
    cells = []
    rounds = len(suite.seeds) if suite.seeds is not None else 1
    for round_ in range(rounds):
        for index in range(len(suite.tasks)):
            for name, tasks in by_encoder.items():
                task = tasks[index]
                seed = suite.seeds[round_] if suite.seeds is not None else seed_of(task, suite.path)
                cells.append(Cell(task, name, seed, encoders[name]))
    return cells
