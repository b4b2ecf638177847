"""`--export-best`: the best trial as a ready config (a task config for one task, a suite file for several)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import yaml

from lra.files import write_atomically
from lra.overrides import ConfigError
from lra.sweep.objective import SweepObjective


def best_config(study: optuna.Study, objective: SweepObjective) -> tuple[str, dict[str, Any]]:
    """A header comment and the config: the sweep's `set` and --set plus the best values, without `trial_set`."""
    try:
        best = study.best_trial
    except ValueError as error:
        raise ConfigError(f"study {study.study_name!r} has no completed trial to export yet") from error
    config = objective.config
    values = "\n".join(f"#   {key}: {value!r}" for key, value in best.params.items())
    header = (
        f"# Best trial of Optuna study {study.study_name!r} (from {config.path}): trial {best.number}, "
        f"objective {config.objective} = {best.value:.4f}, protocol {objective.protocol(best.params)}\n"
        f"# Searched values:\n{values}\n"
        f"# The sweep's trial_set (its per-trial budget) is not applied: this config trains as the task config does.\n"
    )
    if len(config.tasks) == 1:
        return header, objective.task_config(config.tasks[0], best.params, trial=False)
    suite = {
        "tasks": list(config.tasks),
        "set": {**config.set, **objective.overrides, **best.params},
        "task_set": config.task_set,
    }
    return header, suite


def export_best(study: optuna.Study, objective: SweepObjective, path: Path) -> None:
    """Write the best trial's config to `path` atomically (a task config; a suite file for a multi-task sweep)."""
    header, config = best_config(study, objective)
    write_atomically(path, header + yaml.safe_dump(config, sort_keys=False))
