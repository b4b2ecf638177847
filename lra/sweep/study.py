"""The Optuna side of a sweep: storage (with heartbeat and retry), sampler, pruner, and a run loop that stops at N."""

from __future__ import annotations

import inspect
import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import sqlalchemy.exc
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from lra.overrides import ConfigError
from lra.sweep.config import Heartbeat, SweepConfig

log = logging.getLogger("lra.sweep")
# Heartbeats and their retry have been in Optuna since 2.8/2.9 but still carry the "experimental" label.
warnings.filterwarnings("ignore", category=ExperimentalWarning)

SAMPLER_CLASSES: dict[str, type[optuna.samplers.BaseSampler]] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "qmc": optuna.samplers.QMCSampler,
    "gp": optuna.samplers.GPSampler,
}
PRUNER_CLASSES: dict[str, type[optuna.pruners.BasePruner]] = {
    "median": optuna.pruners.MedianPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "none": optuna.pruners.NopPruner,
}
# A trial in one of these states counts towards the requested number (or will, unless it fails).
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
PENDING = (TrialState.RUNNING, TrialState.WAITING)
SCHEMA_RACE_PAUSES = (0.5, 1.0, 1.5, 2.0)  # seconds between tries while another worker creates the tables


ERROR = "error"  # the user attribute holding why a trial failed


class SurplusTrialError(RuntimeError):
    """Raised inside a trial that another worker's simultaneous start made one too many; it is failed unrun."""


class TooManyFailures(RuntimeError):
    """This worker's last trials all failed: a cause that more trials will not fix (the message names the last)."""


class ConsecutiveFailures:
    """Optuna callback: counts the trials in a row that failed with an error in this worker; at `limit`, stops it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state in FINISHED:
            self.count = 0
        elif trial.state == TrialState.FAIL and ERROR in trial.user_attrs:  # not a surplus trial failed unrun
            self.count += 1
            if self.count >= self.limit:
                raise TooManyFailures(
                    f"{self.count} trials in a row failed; the last, trial {trial.number}: {trial.user_attrs[ERROR]}. "
                    "This worker stops; once the cause is fixed, the same command continues the study"
                )


def _construct(kind: str, classes: dict[str, type], spec: dict[str, Any], where: str, **extra: Any) -> Any:
    """classes[spec["name"]](**rest of spec), with unknown constructor arguments reported by name."""
    cls = classes[spec["name"]]
    kwargs = {key: value for key, value in spec.items() if key != "name"} | extra
    accepted = set(inspect.signature(cls).parameters)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ConfigError(
            f"{where}: {kind} {spec['name']!r} ({cls.__name__}) does not take {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(accepted))}"
        )
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where}: {kind} {spec['name']!r}: {error}") from error


def build_sampler(config: SweepConfig, seed: int | None) -> optuna.samplers.BaseSampler:
    """The configured sampler; `seed` (the command's --seed) replaces the file's sampler seed when given."""
    spec = dict(config.sampler)
    if seed is not None:
        spec["seed"] = seed
    return _construct("sampler", SAMPLER_CLASSES, spec, str(config.path))


def build_pruner(config: SweepConfig) -> optuna.pruners.BasePruner:
    return _construct("pruner", PRUNER_CLASSES, config.pruner, str(config.path))


def _connect(url: str, beat: Heartbeat) -> RDBStorage:
    """Optuna's RDBStorage (it creates its tables in an empty database), tried again after a lost creation race.

    Workers started together on an empty database race to create the tables, and PostgreSQL's CREATE TABLE is
    not atomic against another session's ("duplicate key value violates unique constraint
    pg_type_typname_nsp_index"): the loser waits and then finds the tables made.
    """

    def attempt() -> RDBStorage:
        return RDBStorage(
            url,
            heartbeat_interval=beat.interval,
            grace_period=beat.grace_period,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=beat.max_retry),
            engine_kwargs={"pool_pre_ping": True},
        )

    for pause in SCHEMA_RACE_PAUSES:
        try:
            return attempt()
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            time.sleep(pause)
    return attempt()


def build_storage(url: str, heartbeat: Heartbeat) -> RDBStorage:
    """An RDB storage (a SQLite file or any SQLAlchemy URL) with heartbeat and retry of stale trials, connected now.

    Sweeps and storage-shared suites (`lra suite --storage`) both connect through it.
    """
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        return _connect(url, heartbeat)
    except ImportError as error:  # Optuna re-raises a missing driver module as a plain ImportError
        missing = getattr(error.__cause__, "name", None) or getattr(error, "name", None) or str(error)
        raise ConfigError(
            f"storage {shown(url)!r} needs the database driver {missing!r}: pip install -e '.[postgres]'"
        ) from error
    except Exception as error:  # SQLAlchemy's errors for a bad URL, refused connection, unknown host, ...
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"storage {shown(url)!r} cannot be used: {first_line}") from error


def shown(url: str) -> str:
    """The storage URL as printed in messages: any password replaced by ***."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def open_study(config: SweepConfig, storage: RDBStorage, seed: int | None) -> optuna.Study:
    """Create the study, or load it to continue; a stored study with another direction is refused.

    `seed` is the command's --seed (None: the file's sampler seed).
    """
    study = optuna.create_study(
        study_name=config.study_name,
        storage=storage,
        sampler=build_sampler(config, seed),
        pruner=build_pruner(config),
        direction=config.direction,
        load_if_exists=True,
    )
    stored = study.direction.name.lower()
    if stored != config.direction:
        raise ConfigError(
            f"study {config.study_name!r} in the storage was made to {stored}; {config.path} says {config.direction}"
        )
    done = len(study.get_trials(deepcopy=False))
    base = seed if seed is not None else config.sampler.get("seed")
    if done and base is not None:
        # Continuing: the seed alone would make the sampler's random phase draw the points already tried again.
        # Mixing in the number of stored trials keeps a continued run reproducible and distinct.
        study.sampler = build_sampler(config, int(np.random.SeedSequence([base, done]).generate_state(1)[0]))
    return study


def count(study: optuna.Study, states: tuple[TrialState, ...], before: int | None = None) -> int:
    """How many trials are in `states` (only those numbered below `before`, when given)."""
    trials = study.get_trials(deepcopy=False, states=states)
    return sum(1 for trial in trials if before is None or trial.number < before)


def check_not_surplus(trial: optuna.Trial, n_trials: int) -> None:
    """Fail fast if `n_trials` earlier trials are already finished or under way (two workers started at once)."""
    earlier = count(trial.study, FINISHED + PENDING, before=trial.number)
    if earlier >= n_trials:
        raise SurplusTrialError(f"trial {trial.number}: {earlier} earlier trials already cover n_trials={n_trials}")


def run_until(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    n_trials: int,
    poll: float,
    max_consecutive_failures: int,
) -> None:
    """Run trials until the study holds `n_trials` finished ones, across every worker on the storage.

    Stale trials (a worker killed mid-trial) are failed through the heartbeat and retried; while other
    workers' trials would complete the count, this worker waits for them instead of over-shooting. A trial that
    raises is failed (its error in the user attribute `error`, the traceback in the log) and the worker goes on,
    unless `max_consecutive_failures` of its trials in a row failed: then TooManyFailures.
    """
    failures = ConsecutiveFailures(max_consecutive_failures)
    while True:
        fail_stale_trials(study)
        finished = count(study, FINISHED)
        if finished >= n_trials:
            log.info("study %r: %d finished trials, %d requested: done", study.study_name, finished, n_trials)
            return
        waiting = count(study, (TrialState.WAITING,))
        if waiting == 0 and finished + count(study, (TrialState.RUNNING,)) >= n_trials:
            time.sleep(poll)  # others are running the last trials; take over any that go stale
            continue
        study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[failures])
