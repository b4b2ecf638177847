"""A sweep trial that raises or diverges fails with its error recorded and the worker goes on, up to
max_consecutive_failures in a row; a trial retried after its worker died continues in the first attempt's folder,
and retries stop at heartbeat.max_retry."""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from helpers.sweeps import write_sweep
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

import lra.sweep.objective
from lra.sweep.command import main
from lra.sweep.config import load_sweep_config
from lra.sweep.objective import SweepObjective, suggest
from lra.sweep.study import build_storage, open_study, run_until
from lra.training.run import TaskRun

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


class FakeFit:
    """fit_task without training: records each call's folder; raises for the trial numbers in `failing`."""

    def __init__(self, failing: set[int] = frozenset()) -> None:
        self.failing = failing
        self.log_dirs: list[Path] = []

    def __call__(self, task: str, config: dict[str, Any], log_dir: Path, **kwargs: Any) -> TaskRun:
        self.log_dirs.append(log_dir)
        trial = int(log_dir.parent.name.removeprefix("trial_"))
        if len(self.log_dirs) - 1 in self.failing:
            raise RuntimeError(f"the data server went away (call {len(self.log_dirs) - 1}, folder of trial {trial})")
        return TaskRun(task, 0.5, None, "", str(log_dir), 6, 0.1)


def study_of(work: Path, **changes: Any) -> tuple[optuna.Study, SweepObjective]:
    """The tiny sweep's study on SQLite in `work` (heartbeat: 1 s, stale after 1 s, one retry) and its objective."""
    heartbeat = {"interval": 1, "grace_period": 1, "max_retry": 1}
    config = load_sweep_config(write_sweep(work, heartbeat=heartbeat, out=str(work / "trials"), **changes))
    study = open_study(config, build_storage(f"sqlite:///{work / 'study.db'}", config.heartbeat), None)
    return study, SweepObjective(config, {})


def test_a_trial_that_raises_is_failed_with_its_error_and_the_worker_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeFit(failing={0})
    monkeypatch.setattr(lra.sweep.objective, "fit_task", fake)
    study, objective = study_of(tmp_path)
    run_until(study, objective, n_trials=3, poll=0.1, max_consecutive_failures=2)
    states = [trial.state for trial in study.trials]
    assert states == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE, TrialState.COMPLETE]
    assert study.trials[0].user_attrs["error"] == (
        "RuntimeError: the data server went away (call 0, folder of trial 0)"
    )
    assert all("error" not in trial.user_attrs for trial in study.trials[1:])


def test_a_diverging_trial_fails_and_too_many_in_a_row_stop_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real training with an absurd learning rate: the loss is NaN at the first validation (step 3)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LRA_CACHE_DIR", str(tmp_path.parent / "shared-cache"))
    config = write_sweep(tmp_path, n_trials=4, max_consecutive_failures=2)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["--config", str(config), "--set", "model.lr=1.0e+30"])
    assert status == 1
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path}/runs/sweeps/tiny.db")
    assert [trial.state for trial in study.trials] == [TrialState.FAIL, TrialState.FAIL]
    for trial in study.trials:
        assert trial.user_attrs["error"] == "FloatingPointError: val/loss is nan at step 3: the trial diverged"
    assert err.getvalue().splitlines()[-1] == (
        "lra sweep: 2 trials in a row failed; the last, trial 1: FloatingPointError: val/loss is nan at step 3: "
        "the trial diverged. This worker stops; once the cause is fixed, the same command continues the study"
    )


def leave_stale(study: optuna.Study, objective: SweepObjective) -> optuna.Trial:
    """Start the next trial (a queued retry first) as a worker would, then let that worker die: no more heartbeats."""
    trial = study.ask()
    for param in objective.config.search_space:
        suggest(trial, param)
    study._storage.record_heartbeat(trial._trial_id)
    time.sleep(2.5)  # past the grace period of 1 s (SQLite stores heartbeats to the second)
    return trial


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")  # leave_stale
def test_retries_continue_the_first_attempts_folder_and_stop_at_max_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeFit()
    monkeypatch.setattr(lra.sweep.objective, "fit_task", fake)
    study, objective = study_of(tmp_path)
    trials = tmp_path / "trials"

    leave_stale(study, objective)  # trial 0 dies; its retry (trial 1) runs in trial 0's folder
    run_until(study, objective, n_trials=1, poll=0.1, max_consecutive_failures=2)
    assert fake.log_dirs == [trials / "trial_0000" / "listops"]
    assert study.trials[1].user_attrs["tensorboard"] == str(trials / "trial_0000")

    leave_stale(study, objective)  # trial 2 dies
    optuna.storages.fail_stale_trials(study)  # ... and its retry (trial 3) dies too: max_retry=1 is used up
    retry = leave_stale(study, objective)
    run_until(study, objective, n_trials=2, poll=0.1, max_consecutive_failures=2)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE] + [TrialState.FAIL] * 2 + [
        TrialState.COMPLETE
    ]
    assert retry.number == 3 and RetryHeartbeatStaleTrialCallback.retry_history(study.trials[3]) == [2]
    assert RetryHeartbeatStaleTrialCallback.retried_trial_number(study.trials[4]) is None  # a new trial, no retry
    assert fake.log_dirs[1:] == [trials / "trial_0004" / "listops"]
