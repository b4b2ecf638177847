"""The sweep file: which task configs (or a suite file), fixed overrides, the search space over dotted config keys,
the study settings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lra.overrides import ConfigError, check_overrides, check_task_configs, load_yaml_mapping, task_name

SAMPLERS = ("tpe", "random", "cmaes", "qmc", "gp")
PRUNERS = ("median", "hyperband", "none")
KEYS = (
    "study_name", "tasks", "suite", "objective", "direction", "n_trials", "set", "trial_set", "task_set",
    "search_space", "sampler", "pruner", "storage", "heartbeat", "max_consecutive_failures", "out",
)  # fmt: skip


@dataclass(frozen=True)
class Param:
    """One searched config key: a float or int range (optionally log-scaled or stepped), or categorical choices."""

    key: str
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def extremes(self) -> tuple[Any, Any]:
        """The two ends of the range (first and last choice): the values checked before any training."""
        if self.type == "categorical":
            return self.choices[0], self.choices[-1]
        cast = int if self.type == "int" else float
        return cast(self.low), cast(self.high)


@dataclass(frozen=True)
class Heartbeat:
    """Optuna's RDB heartbeat: a trial silent for `grace_period` s is failed and retried up to `max_retry` times."""

    interval: int = 60
    grace_period: int = 180
    max_retry: int = 2


@dataclass(frozen=True)
class SweepConfig:
    """A parsed sweep file (see sweeps/nala_listops.yaml for every key with comments)."""

    path: Path
    study_name: str
    tasks: tuple[str, ...]
    objective: str
    direction: Literal["maximize", "minimize"]
    n_trials: int
    search_space: tuple[Param, ...]
    set: dict[str, Any] = field(default_factory=dict)
    trial_set: dict[str, Any] = field(default_factory=dict)
    task_set: dict[str, dict[str, Any]] = field(default_factory=dict)
    sampler: dict[str, Any] = field(default_factory=lambda: {"name": "tpe", "seed": 0})
    pruner: dict[str, Any] = field(default_factory=lambda: {"name": "median"})
    storage: str | None = None
    heartbeat: Heartbeat = Heartbeat()
    max_consecutive_failures: int = 3  # a worker stops after this many of its trials in a row failed
    out: Path | None = None
    suite: Path | None = None

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(task_name(task) for task in self.tasks)

    @property
    def out_dir(self) -> Path:
        """Where trials log: `out`, by default runs/sweeps/<study_name>."""
        return self.out or Path("runs") / "sweeps" / self.study_name

    @property
    def storage_url(self) -> str:
        """`storage`, by default a SQLite file runs/sweeps/<study_name>.db."""
        return self.storage or f"sqlite:///{Path('runs') / 'sweeps' / self.study_name}.db"


def _expect(value: Any, kind: type | tuple[type, ...], where: str, what: str) -> Any:
    """`value` if it is a `kind` (True/False count as numbers only where bool is asked for), else a ConfigError."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise ConfigError(f"{where}: expected {what}, got {value!r}")
    return value


def parse_param(key: str, spec: Any, where: str) -> Param:
    """One search-space entry `{type: float, low: .., high: .., log: ..}` / `{type: categorical, choices: [..]}`."""
    where = f"{where}: search_space[{key!r}]"
    spec = _expect(spec, dict, where, "a mapping such as {type: float, low: 0.5, high: 4.0}")
    kind = spec.get("type")
    if kind not in ("float", "int", "categorical"):
        raise ConfigError(f"{where}: type must be float, int or categorical, got {kind!r}")
    allowed = {"type", "choices"} if kind == "categorical" else {"type", "low", "high", "log", "step"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} for type {kind}; expected {sorted(allowed)}")
    if kind == "categorical":
        choices = _expect(spec.get("choices"), list, where, "choices: a non-empty list")
        if not choices:
            raise ConfigError(f"{where}: choices must not be empty")
        return Param(key, "categorical", choices=tuple(choices))
    number = int if kind == "int" else (int, float)
    low, high = (
        _expect(spec.get(end), number, f"{where}.{end}", f"a{'n' * (kind == 'int')} {kind}") for end in ("low", "high")
    )
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ConfigError(f"{where}: low ({low}) must be <= high ({high})")
    log = _expect(spec.get("log", False), bool, f"{where}.log", "true or false")
    step = spec.get("step")
    if step is not None:
        _expect(step, number, f"{where}.step", f"a positive {kind}")
        if step <= 0 or log:
            raise ConfigError(f"{where}: step must be > 0 and cannot be combined with log: true")
    if log and low <= 0:
        raise ConfigError(f"{where}: log: true needs low > 0, got {low}")
    return Param(key, kind, low=low, high=high, log=log, step=step)


def _named(value: Any, where: str, what: str, names: tuple[str, ...], default: dict[str, Any]) -> dict[str, Any]:
    """`{name: ..., <constructor arguments>}` for a sampler or pruner (a bare name is accepted too)."""
    if value is None:
        return dict(default)
    if isinstance(value, str):
        value = {"name": value}
    value = dict(_expect(value, dict, where, f"a mapping {{name: one of {', '.join(names)}, ...}}"))
    if value.get("name") not in names:
        raise ConfigError(f"{where}.name: unknown {what} {value.get('name')!r}; expected one of {', '.join(names)}")
    return value


def load_sweep_config(path: Path) -> SweepConfig:
    """Read and check a sweep file; every problem is a ConfigError naming the file and the key."""
    raw = load_yaml_mapping(path)
    where = str(path)
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(KEYS)}")
    if ("tasks" in raw) == ("suite" in raw):
        raise ConfigError(
            f"{where}: give exactly one of `tasks:` (task names or config paths) or `suite:` (a suite file)"
        )
    shared: dict[str, Any] = {}
    task_set: dict[str, dict[str, Any]] = {}
    suite = None
    if "suite" in raw:
        from lra.suite.config import load_suite_config

        suite = Path(_expect(raw["suite"], str, f"{where}: suite", "the path of a suite file such as suites/lra.yaml"))
        suite = path.parent / suite if (path.parent / suite).is_file() else suite  # next to the sweep file, else here
        loaded = load_suite_config(suite)
        tasks, shared, task_set = (
            tuple(loaded.tasks),
            dict(loaded.set),
            {k: dict(v) for k, v in loaded.task_set.items()},
        )
    else:
        tasks = check_task_configs(raw["tasks"], f"{where}: tasks")
    names = [task_name(task) for task in tasks]
    objective = raw.get("objective", names[0] if len(names) == 1 else "average")
    if objective != "average" and objective not in names:
        raise ConfigError(
            f"{where}: objective must be `average` or one of the tasks ({', '.join(names)}), got {objective!r}"
        )
    direction = raw.get("direction", "maximize")
    if direction not in ("maximize", "minimize"):
        raise ConfigError(f"{where}: direction must be maximize or minimize, got {direction!r}")
    n_trials = _expect(raw.get("n_trials", 20), int, f"{where}: n_trials", "a positive integer")
    if n_trials < 1:
        raise ConfigError(f"{where}: n_trials must be >= 1, got {n_trials}")
    space = _expect(
        raw.get("search_space"), dict, f"{where}: search_space", "a mapping of dotted config keys to ranges"
    )
    if not space:
        raise ConfigError(f"{where}: search_space is empty; name at least one config key to search")
    for name, overrides in check_overrides(raw.get("task_set"), f"{where}: task_set").items():
        if name not in names:
            raise ConfigError(f"{where}: task_set[{name!r}]: not one of the tasks ({', '.join(names)})")
        task_set.setdefault(name, {}).update(check_overrides(overrides, f"{where}: task_set[{name!r}]"))
    heartbeat = check_overrides(raw.get("heartbeat"), f"{where}: heartbeat")
    extra = sorted(set(heartbeat) - {"interval", "grace_period", "max_retry"})
    if extra:
        raise ConfigError(
            f"{where}: heartbeat: unknown key(s) {', '.join(extra)}; expected interval, grace_period, max_retry"
        )
    for key, value in heartbeat.items():
        _expect(value, int, f"{where}: heartbeat.{key}", "a non-negative integer (seconds / count)")
    failures = _expect(
        raw.get("max_consecutive_failures", 3), int, f"{where}: max_consecutive_failures", "an integer >= 1"
    )
    if failures < 1:
        raise ConfigError(f"{where}: max_consecutive_failures must be >= 1, got {failures}")
    storage = raw.get("storage")
    out = raw.get("out")
    return SweepConfig(
        path=path,
        study_name=_expect(raw.get("study_name", path.stem), str, f"{where}: study_name", "a name"),
        tasks=tasks,
        objective=objective,
        direction=direction,
        n_trials=n_trials,
        search_space=tuple(parse_param(key, spec, where) for key, spec in space.items()),
        set={**shared, **check_overrides(raw.get("set"), f"{where}: set")},
        trial_set=check_overrides(raw.get("trial_set"), f"{where}: trial_set"),
        task_set=task_set,
        sampler=_named(raw.get("sampler"), f"{where}: sampler", "sampler", SAMPLERS, {"name": "tpe", "seed": 0}),
        pruner=_named(raw.get("pruner"), f"{where}: pruner", "pruner", PRUNERS, {"name": "median"}),
        storage=None if storage is None else _expect(storage, str, f"{where}: storage", "a database URL"),
        heartbeat=Heartbeat(**heartbeat),
        max_consecutive_failures=failures,
        out=None if out is None else Path(_expect(out, str, f"{where}: out", "a folder")),
        suite=suite,
    )
