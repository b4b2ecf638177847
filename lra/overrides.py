"""Task configs by task name or path, the `tasks:` lists of suite and sweep files, and dotted-key overrides of the
configs (`model.depth`, `data.root`, ...)."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


class ConfigError(ValueError):
    """A user's config file, key or value is not what the harness expects (the message says which)."""


def find_task_config(task: str) -> Path:
    """A task config by path (`*.yaml`) or by task name: tasks/<task>.yaml here, else in the harness's checkout."""
    path = Path(task)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"task config {task!r} does not exist")
        return path
    for root in (Path.cwd(), REPO):
        candidate = root / "tasks" / f"{task}.yaml"
        if candidate.is_file():
            return candidate
    raise ConfigError(f"unknown task {task!r}: neither tasks/{task}.yaml here nor in {REPO / 'tasks'} exists")


def task_name(task: str) -> str:
    """The name of a task config given by task name or path (the file's stem): its folder and key in results."""
    return Path(task).stem


def check_task_configs(value: Any, where: str) -> tuple[str, ...]:
    """A suite's or sweep's `tasks:`: a non-empty list of task names or config paths, no name twice.

    Each task config trains into a folder of its name, so two entries with one name would share it.
    """
    if not isinstance(value, list) or not value or not all(isinstance(task, str) and task.strip() for task in value):
        raise ConfigError(f"{where}: expected a non-empty list of task names or config paths, got {value!r}")
    names = [task_name(task) for task in value]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"{where}: task {', '.join(map(repr, repeated))} appears more than once")
    return tuple(value)


def load_yaml_mapping(path: Path) -> dict[str, Any]:
    """A YAML file whose top level must be a mapping; a clear error otherwise."""
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(loaded).__name__}")
    return loaded


def apply_overrides(config: Mapping[str, Any], overrides: Mapping[str, Any], source: str) -> dict[str, Any]:
    """A copy of `config` with each dotted key of `overrides` set (`model.attention_kwargs.alpha: 2.0`).

    A key that lands on a `class_path` / `init_args` node goes into its init_args, so `data.root` and
    `data.init_args.root` are the same key. Missing intermediate mappings are created; whether a key is
    known is for the CLI's parser to say. `source` names where the overrides came from, for errors.
    """
    result = copy.deepcopy(dict(config))
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        if not all(parts):
            raise ConfigError(f"{source}: {dotted!r} is not a dotted config key such as model.depth")
        node = result
        for depth, part in enumerate(parts[:-1]):
            if isinstance(node, dict) and "class_path" in node and part not in ("class_path", "init_args"):
                node = node.setdefault("init_args", {})
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise ConfigError(f"{source}: cannot set {dotted!r}: {where!r} is {child!r}, not a mapping of keys")
            node = child
        if "class_path" in node and parts[-1] not in ("class_path", "init_args"):
            node = node.setdefault("init_args", {})
        node[parts[-1]] = copy.deepcopy(value)
    return result


def check_overrides(value: Any, where: str) -> dict[str, Any]:
    """A file's mapping of dotted config keys (`model.depth`) to values, checked; None is empty."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping of dotted config keys to values, got {value!r}")
    for key in value:
        if not isinstance(key, str) or not all(key.split(".")):
            raise ConfigError(f"{where}: {key!r} is not a dotted config key such as model.depth")
    return dict(value)


def parse_assignments(assignments: Iterable[str], flag: str = "--set") -> dict[str, Any]:
    """`["model.depth=3", "model.attention=softmax"]` -> {"model.depth": 3, ...}; values are read as YAML."""
    parsed: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {assignment!r}: expected KEY=VALUE, e.g. {flag} model.attention=softmax")
        try:
            parsed[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"{flag} {assignment!r}: the value is not valid YAML: {error}") from error
    return parsed


def digest(value: Any) -> str:
    """A short, stable hash of a JSON-able value (configs, overrides)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]
