"""The suite file (e.g. sweeps/suites/lra.yaml): which task configs, shared and per-task overrides, and each task
config merged with them."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lra.data.tasks import AVERAGED_TASKS, TASKS
from lra.overrides import (
    ConfigError,
    apply_overrides,
    check_overrides,
    check_task_configs,
    digest,
    find_task_config,
    load_yaml_mapping,
    task_name,
)
from lra.protocol import config_protocol

KEYS = ("tasks", "set", "task_set")
SUITE_RUN = "suite"  # OUT/suite is the suite's own TensorBoard run, so no task may be named so


@dataclass(frozen=True)
class SuiteConfig:
    """A parsed suite file: task configs (task names or paths) in the order they run, and their overrides."""

    path: Path
    tasks: tuple[str, ...] = AVERAGED_TASKS
    set: dict[str, Any] = field(default_factory=dict)
    task_set: dict[str, dict[str, Any]] = field(default_factory=dict)  # by task name (a config path's stem)

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(task_name(task) for task in self.tasks)


@dataclass(frozen=True)
class SuiteTask:
    """One task config of a suite: its file, the merged config it trains with, and the LRA task it is scored as."""

    name: str
    config_path: Path
    config: dict[str, Any]
    overrides: dict[str, Any]  # every dotted key set on top of the task's YAML (set, task_set, --set; last wins)
    column: str | None  # the task (in TASKS) whose column of the LRA table it fills; None: beside the table

    @property
    def digest(self) -> str:
        """Identifies the merged config: a finished task is reused only while this is unchanged."""
        return digest(self.config)

    @property
    def protocol(self) -> str:
        """faithful (protocol 2's code, comparable with the published table) or clean (the corrected variant)."""
        return config_protocol(self.config)

    @property
    def attention(self) -> str:
        """The encoder, e.g. `nala {alpha: 3.0, beta: 0.5}`, for the results table."""
        model = self.config.get("model") or {}
        kwargs = model.get("attention_kwargs") or {}
        name = model.get("attention", "?")
        name = "+".join(map(str, name)) if isinstance(name, list) else str(name)
        return f"{name} {flow(kwargs)}" if kwargs else name


def flow(value: Any) -> str:
    """A value as one line of YAML, the way --set takes it: `softmax`, `3.0`, `{alpha: 2.0}`."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False).strip()
    return text.removesuffix("...").strip()


def _tasks(value: Any, where: str) -> tuple[str, ...]:
    """The shared check of a `tasks:` list, and no task config named like the suite's own run folder."""
    tasks = check_task_configs(value, where)
    if SUITE_RUN in map(task_name, tasks):
        raise ConfigError(f"{where}: a task may not be named {SUITE_RUN!r} (OUT/{SUITE_RUN} is the suite's own run)")
    return tasks


def load_suite_config(path: Path) -> SuiteConfig:
    """Read and check a suite file; every problem is a ConfigError naming the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"suite file {path} does not exist")
    raw = load_yaml_mapping(path)
    unknown = sorted(map(str, set(raw) - set(KEYS)))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(KEYS)}")
    tasks = _tasks(raw["tasks"], f"{path}: tasks") if "tasks" in raw else AVERAGED_TASKS
    names = [task_name(task) for task in tasks]
    per_task = raw.get("task_set") or {}
    if not isinstance(per_task, dict):
        raise ConfigError(f"{path}: task_set: expected a mapping of task names to overrides, got {per_task!r}")
    task_set: dict[str, dict[str, Any]] = {}
    for task, overrides in per_task.items():
        if task_name(str(task)) not in names:
            raise ConfigError(f"{path}: task_set[{task!r}]: not one of the suite's tasks ({', '.join(names)})")
        task_set[task_name(str(task))] = check_overrides(overrides, f"{path}: task_set[{task!r}]")
    return SuiteConfig(path, tasks, check_overrides(raw.get("set"), f"{path}: set"), task_set)


def select_tasks(suite: SuiteConfig, selection: str) -> SuiteConfig:
    """The suite with `--tasks a,b` (names or config paths) in place of its own list; task_set keeps its entries."""
    tasks = _tasks([task.strip() for task in selection.split(",")], f"--tasks {selection!r}")
    return SuiteConfig(suite.path, tasks, suite.set, suite.task_set)


def lra_column(config: Mapping[str, Any]) -> str | None:
    """The task (in TASKS) a task config trains, known from its DataModule (Pathfinder: by level), else None.

    So a renamed config (e.g. an exported best_listops.yaml) still counts as ListOps, and Pathfinder at another
    resolution or contour length is reported beside the table, not averaged into it.
    """
    data = config.get("data") or {}
    class_name = str(data.get("class_path", "")).rpartition(".")[2]
    args = data.get("init_args") or {}
    for task, (datamodule, settings) in TASKS.items():
        if datamodule.__name__ != class_name:
            continue
        defaults = inspect.signature(datamodule).parameters
        level = [key for key in ("resolution", "difficulty") if key in settings]
        if all(args.get(key, defaults[key].default) == settings[key] for key in level):
            return task
    return None


def suite_tasks(suite: SuiteConfig, cli_set: Mapping[str, Any]) -> list[SuiteTask]:
    """Each task's config: its YAML, then the suite's `set`, its `task_set`, then the command line's --set."""
    tasks = []
    for entry in suite.tasks:
        name = task_name(entry)
        try:
            config_path = find_task_config(entry)
        except ConfigError as error:
            raise ConfigError(f"{suite.path}: tasks: {error}") from error
        layers = [
            (suite.set, f"{suite.path}: set"),
            (suite.task_set.get(name, {}), f"{suite.path}: task_set[{name!r}]"),
            (dict(cli_set), "--set"),
        ]
        config = load_yaml_mapping(config_path)
        for overrides, source in layers:
            config = apply_overrides(config, overrides, source)
        merged = {key: value for overrides, _ in layers for key, value in overrides.items()}
        tasks.append(SuiteTask(name, config_path, config, merged, lra_column(config)))
    _check_columns(suite.path, tasks)
    return tasks


def _check_columns(path: Path, tasks: Sequence[SuiteTask]) -> None:
    """Each LRA column is filled by one task at most (the table and the average have one cell per task)."""
    seen: dict[str, str] = {}
    for task in tasks:
        if task.column is None:
            continue
        if task.column in seen:
            raise ConfigError(
                f"{path}: tasks {seen[task.column]!r} and {task.name!r} are both LRA's {task.column} task; "
                f"a suite scores each task once (run the other with --out DIR)"
            )
        seen[task.column] = task.name
