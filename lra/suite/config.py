"""The suite file (e.g. sweeps/suites/lra.yaml): which task configs, shared and per-task overrides, the encoders
and seeds of the grid, its budget, and each task config merged with the overrides."""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
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
from lra.suite.budget import Budget, parse_budget

KEYS = ("tasks", "set", "task_set", "encoders", "seeds", "budget", "heartbeat")
SUITE_RUN = "suite"  # OUT/suite holds the suite's own TensorBoard runs, so no task may be named so
FIGURES = "figures"  # OUT/figures holds the pictures
RESERVED = (SUITE_RUN, FIGURES)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")  # an encoder's name is a folder name
HEARTBEAT_KEYS = ("interval", "grace_period", "max_retry")
SEED_RANGE = 2**32  # seed_everything takes 0 <= seed < 2**32


@dataclass(frozen=True)
class SuiteConfig:
    """A parsed suite file: task configs (task names or paths) in the order they run, and their overrides."""

    path: Path
    tasks: tuple[str, ...] = AVERAGED_TASKS
    set: dict[str, Any] = field(default_factory=dict)
    task_set: dict[str, dict[str, Any]] = field(default_factory=dict)  # by task name (a config path's stem)
    encoders: dict[str, dict[str, Any]] | None = None  # name -> overrides; None: the task configs' own encoder
    seeds: tuple[int, ...] | None = None  # training seeds; None: each task config's seed_everything
    budget: Budget = field(default_factory=Budget)
    heartbeat: dict[str, int] = field(default_factory=dict)  # Optuna heartbeat settings for --storage

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
    """The shared check of a `tasks:` list, and no task config named like the suite's own folders."""
    tasks = check_task_configs(value, where)
    for name in set(RESERVED) & set(map(task_name, tasks)):
        raise ConfigError(f"{where}: a task may not be named {name!r} (OUT/{name} is the suite's own folder)")
    return tasks


def _repeated_key(node: yaml.Node, where: list[str]) -> tuple[list[str], str, int] | None:
    """The first mapping key given twice under `node` (PyYAML keeps the last silently): (parents, key, line)."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                return where, str(key.value), key.start_mark.line + 1
            seen.add(key.value)
            found = _repeated_key(value, [*where, str(key.value)])
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found = _repeated_key(item, [*where, f"[{index}]"])
            if found:
                return found
    return None


def _check_unique_keys(path: Path) -> None:
    """No key twice in one mapping of the file: two encoders with one name would otherwise be one, silently."""
    found = _repeated_key(yaml.compose(path.read_text(), Loader=yaml.SafeLoader), [])
    if found is None:
        return
    parents, key, line = found
    where = f"{path}: {'.'.join(parents)}" if parents else str(path)
    what = "encoder" if parents == ["encoders"] else "key"
    raise ConfigError(f"{where}: {what} {key!r} appears more than once (line {line}); each must be given once")


def _encoders(value: Any, where: str) -> dict[str, dict[str, Any]]:
    """`encoders:` a non-empty mapping of names (folder names) to dotted-key overrides (`nala: {}` for none)."""
    if not isinstance(value, dict) or not value:
        raise ConfigError(
            f"{where}: expected a non-empty mapping of encoder names to overrides, e.g. "
            f"{{nala: {{}}, softmax: {{model.attention: softmax}}}}, got {value!r}"
        )
    encoders = {}
    for name, overrides in value.items():
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ConfigError(f"{where}: encoder name {name!r} must be letters, digits, _ . + - (a folder name)")
        encoders[name] = check_overrides(overrides, f"{where}[{name!r}]")
    return encoders


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    """`seeds:` a non-empty list of distinct integers in [0, 2**32)."""
    valid = isinstance(value, list) and value and all(type(seed) is int for seed in value)
    if not valid or not all(0 <= seed < SEED_RANGE for seed in value):
        raise ConfigError(f"{where}: expected a non-empty list of integer seeds in [0, 2**32), got {value!r}")
    repeated = sorted({seed for seed in value if value.count(seed) > 1})
    if repeated:
        raise ConfigError(f"{where}: seed {', '.join(map(str, repeated))} appears more than once")
    return tuple(value)


def _heartbeat(value: Any, where: str) -> dict[str, int]:
    """`heartbeat: {interval, grace_period, max_retry}` for --storage (seconds, seconds, count)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or set(value) - set(HEARTBEAT_KEYS):
        raise ConfigError(f"{where}: expected a mapping with some of {', '.join(HEARTBEAT_KEYS)}, got {value!r}")
    for key, number in value.items():
        if type(number) is not int or number < 0:
            raise ConfigError(f"{where}.{key}: expected a non-negative integer, got {number!r}")
    return dict(value)


def load_suite_config(path: Path) -> SuiteConfig:
    """Read and check a suite file; every problem is a ConfigError naming the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"suite file {path} does not exist")
    raw = load_yaml_mapping(path)
    _check_unique_keys(path)
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
    return SuiteConfig(
        path,
        tasks,
        check_overrides(raw.get("set"), f"{path}: set"),
        task_set,
        encoders=_encoders(raw["encoders"], f"{path}: encoders") if "encoders" in raw else None,
        seeds=_seeds(raw["seeds"], f"{path}: seeds") if "seeds" in raw else None,
        budget=parse_budget(raw.get("budget"), f"{path}: budget"),
        heartbeat=_heartbeat(raw.get("heartbeat"), f"{path}: heartbeat"),
    )


def _names(selection: str) -> list[str]:
    return [name.strip() for name in selection.split(",")]


def select_tasks(suite: SuiteConfig, selection: str) -> SuiteConfig:
    """The suite with `--tasks a,b` (names or config paths) in place of its own list; task_set keeps its entries."""
    return replace(suite, tasks=_tasks(_names(selection), f"--tasks {selection!r}"))


def select_encoders(suite: SuiteConfig, selection: str) -> SuiteConfig:
    """The suite with only the encoders `--encoders a,b` names (each must be one of the file's)."""
    where = f"--encoders {selection!r}"
    names = _names(selection)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"{where}: encoder {', '.join(map(repr, repeated))} appears more than once")
    if suite.encoders is None:
        raise ConfigError(f"{where}: {suite.path} has no `encoders:`; each task trains its own config's encoder")
    unknown = [name for name in names if name not in suite.encoders]
    if unknown:
        raise ConfigError(
            f"{where}: unknown encoder {', '.join(map(repr, unknown))}; {suite.path} has {', '.join(suite.encoders)}"
        )
    return replace(suite, encoders={name: suite.encoders[name] for name in names})


def select_seeds(suite: SuiteConfig, selection: str) -> SuiteConfig:
    """The suite with the seeds `--seeds 0,1,2` in place of the file's (any seeds, e.g. more of them)."""
    where = f"--seeds {selection!r}"
    try:
        seeds = [int(seed) for seed in _names(selection)]
    except ValueError:
        raise ConfigError(f"{where}: expected a comma-separated list of integer seeds, e.g. --seeds 0,1,2") from None
    return replace(suite, seeds=_seeds(seeds, where))


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


def suite_tasks(
    suite: SuiteConfig, cli_set: Mapping[str, Any], encoder: tuple[str, Mapping[str, Any]] | None = None
) -> list[SuiteTask]:
    """Each task's config: its YAML, then the suite's `set`, its `task_set`, the encoder's overrides (`encoder`:
    its name and overrides, if any), then the command line's --set."""
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
            *([(dict(encoder[1]), f"{suite.path}: encoders[{encoder[0]!r}]")] if encoder else []),
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
