"""A sweep trial: sample the search space, train each task on the validation split only, return the objective."""

from __future__ import annotations

import statistics
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from optuna_integration import PyTorchLightningPruningCallback

from lra.overrides import ConfigError, apply_overrides, find_task_config, load_yaml_mapping
from lra.protocol import config_protocol
from lra.sweep.config import Param, SweepConfig
from lra.sweep.study import ERROR, check_not_surplus
from lra.training.run import check_config, fit_task

MONITOR = "val/acc_best"


class FailOnNonFiniteLoss(Callback):
    """Fails the trial at a validation whose loss is not finite: its weights have diverged (NaN or inf), so its
    accuracy would mean nothing, and the sampler should see a failure rather than a number."""

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        loss = trainer.callback_metrics.get("val/loss")
        if not trainer.sanity_checking and loss is not None and not torch.isfinite(loss):
            raise FloatingPointError(f"val/loss is {float(loss)} at step {trainer.global_step}: the trial diverged")


class StepPruningCallback(PyTorchLightningPruningCallback):
    """optuna-integration's Lightning pruning callback, reporting at `offset + global_step` instead of the epoch.

    LRA runs validate every N steps inside long epochs, so epoch numbers repeat and Optuna would keep only the
    first report of each; `score` maps the monitored value to the objective's scale (the suite's running mean).
    Distributed (DDP) training keeps the parent's epoch-based path.
    """

    def __init__(self, trial: optuna.Trial, offset: int, score: Callable[[float], float]) -> None:
        super().__init__(trial, MONITOR)
        self.offset = offset
        self.score = score
        self.last_step: int | None = None

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.is_ddp_backend:
            super().on_validation_end(trainer, pl_module)
            return
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            warnings.warn(f"{self.monitor} is not logged, so this trial cannot be pruned", stacklevel=1)
            return
        step = self.offset + trainer.global_step
        self._trial.report(self.score(value.item()), step=step)
        self.last_step = step
        if self._trial.should_prune():
            raise optuna.TrialPruned(f"trial {self._trial.number} pruned at step {step}")


def suggest(trial: optuna.Trial, param: Param) -> Any:
    """The trial's value for one searched key (the Optuna parameter is named by the dotted key)."""
    if param.type == "categorical":
        return trial.suggest_categorical(param.key, list(param.choices))
    if param.type == "int":
        return trial.suggest_int(param.key, int(param.low), int(param.high), step=int(param.step or 1), log=param.log)
    return trial.suggest_float(param.key, param.low, param.high, step=param.step, log=param.log)


def first_attempt(trial: optuna.Trial) -> int:
    """The number of the trial whose worker died and which this one retries (Optuna's heartbeat retry), else its own."""
    running = trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    frozen = next(t for t in running if t.number == trial.number)
    original = RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
    return trial.number if original is None else original


class SweepObjective:
    """objective(trial) for study.optimize: trains the tasks in order with the sampled values; test is never scored."""

    def __init__(self, config: SweepConfig, overrides: dict[str, Any]) -> None:
        self.config = config
        self.overrides = overrides  # the command line's --set, on top of the file's set
        self.bases = {task: load_yaml_mapping(find_task_config(task)) for task in config.tasks}

    def task_config(self, task: str, params: dict[str, Any], trial: bool = True) -> dict[str, Any]:
        """A task's config with set, task_set, (for trials) trial_set and --set, then the sampled values."""
        config = self.config
        name = Path(task).stem
        layers = [config.set, config.task_set.get(name, {}), config.trial_set if trial else {}, self.overrides, params]
        merged = {key: value for layer in layers for key, value in layer.items()}
        return apply_overrides(self.bases[task], merged, str(config.path))

    def check(self) -> None:
        """Every task's config parses and builds with the fixed overrides and with all searched keys at either end;
        a ConfigError naming the offending key and value, before any training."""
        path, space = self.config.path, self.config.search_space
        for task in self.config.tasks:
            check_config(self.task_config(task, {}), f"{path}: set / trial_set / task_set / --set ({task})")
            if not isinstance(self.task_config(task, {}).get("trainer", {}).get("max_steps"), int):
                raise ConfigError(f"{path}: {task}: trials need an integer trainer.max_steps")
            for end in (0, 1):
                params = {param.key: param.extremes()[end] for param in space}
                try:
                    check_config(self.task_config(task, params), f"{path}: search_space at {params} ({task})")
                except ConfigError:
                    self._blame(task)  # name the key that fails on its own, where one does
                    raise

    def _blame(self, task: str) -> None:
        """Check each searched key alone at both ends; raise the first key's error."""
        for param in self.config.search_space:
            for value in param.extremes():
                where = f"{self.config.path}: search_space[{param.key!r}] = {value!r} ({task})"
                check_config(self.task_config(task, {param.key: value}), where)

    def __call__(self, trial: optuna.Trial) -> float:
        """Train the trial's tasks; a trial retried after its worker died continues in the first attempt's folder from
        its checkpoints. An error (or a diverged loss) is kept in the user attribute `error` and fails the trial."""
        config = self.config
        check_not_surplus(trial, config.n_trials)
        params = {param.key: suggest(trial, param) for param in config.search_space}
        trial_dir = config.out_dir / f"trial_{first_attempt(trial):04d}"
        trial.set_user_attr("tensorboard", str(trial_dir))
        trial.set_user_attr("protocol", self.protocol(params))
        accuracies: dict[str, float] = {}
        try:
            offset = 0
            for index, task in enumerate(config.tasks):
                name = Path(task).stem
                task_config = self.task_config(task, params)
                done = list(accuracies.values())
                score = self._running_score(done)
                pruning = StepPruningCallback(trial, offset, score)
                callbacks = [FailOnNonFiniteLoss(), pruning]
                trial.set_user_attr(f"tensorboard/{name}", str(trial_dir / name))  # known while it runs, if pruned
                run = fit_task(name, task_config, trial_dir / name, test=False, callbacks=callbacks, resume=True)
                accuracies[name] = run.best_val_acc
                trial.set_user_attr(f"val_acc/{name}", run.best_val_acc)
                offset += task_config["trainer"]["max_steps"]
                if config.objective == "average" and index < len(config.tasks) - 1:
                    if pruning.last_step != offset:  # else the last validation already reported this value here
                        trial.report(statistics.fmean(accuracies.values()), step=offset)
                    if trial.should_prune():
                        raise optuna.TrialPruned(f"trial {trial.number} pruned after {name}")
        except optuna.TrialPruned:
            pruned_at = pruning.last_step if pruning.last_step is not None else offset
            self._log_hparams(trial_dir, {**params, "protocol": self.protocol(params)}, accuracies, None, pruned_at)
            raise
        except Exception as error:
            trial.set_user_attr(ERROR, f"{type(error).__name__}: {error}")
            raise
        value = self._objective(accuracies)
        self._log_hparams(trial_dir, {**params, "protocol": self.protocol(params)}, accuracies, value)
        return value

    def protocol(self, params: dict[str, Any]) -> str:
        """The protocol the trial's tasks run under (faithful, clean, or both joined by +)."""
        return "+".join(sorted({config_protocol(self.task_config(task, params)) for task in self.config.tasks}))

    def _running_score(self, done: list[float]) -> Callable[[float], float]:
        """During a task: its best val acc (single objective), or the mean over the finished tasks and it (average)."""
        if self.config.objective != "average":
            return float
        return lambda value: statistics.fmean([*done, value])

    def _objective(self, accuracies: dict[str, float]) -> float:
        if self.config.objective == "average":
            return statistics.fmean(accuracies.values())
        return accuracies[self.config.objective]

    @staticmethod
    def _log_hparams(
        trial_dir: Path,
        params: dict[str, Any],
        accuracies: dict[str, float],
        value: float | None,
        pruned_at: int | None = None,
    ) -> None:
        """The trial's values and metrics for TensorBoard's HParams view, in the trial's own run folder (a pruned
        trial with the step it was pruned at: the view lists only runs with a metric)."""
        logger = TensorBoardLogger(
            save_dir=str(trial_dir.parent), name=trial_dir.name, version="", default_hp_metric=False
        )
        metrics = {f"hparams/val_acc/{task}": acc for task, acc in accuracies.items()}
        if value is not None:
            metrics["hparams/objective"] = value
        if pruned_at is not None:
            metrics["hparams/pruned_at_step"] = float(pruned_at)
        logger.log_hyperparams(params, metrics)
        logger.finalize("success")
