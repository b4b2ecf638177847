"""A worker killed (SIGKILL) in the middle of a trial loses nothing: re-running the command retries that trial.

On SQLite under the test's folder always; on PostgreSQL too when LRA_TEST_POSTGRES_URL is set (CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from lra_fixtures.sweep_workers import (
    finish,
    has_events,
    kill_worker,
    postgres_study,
    start_sweep,
    tail,
    trial_folders,
    wait_for,
)
from lra_fixtures.sweeps import write_sweep
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # retried_trial_number
N_TRIALS = 2
STEPS = "trainer.max_steps=12"  # twice the tiny sweep's: the trial is still training when it is killed


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, work: Path) -> Iterator[tuple[str, str]]:
    """(storage URL, study name) on SQLite in the test's folder, or on the test PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{work / 'study.db'}", "faults"
        return
    with postgres_study("faults") as url_and_name:
        yield url_and_name


def running_trial(url: str, name: str, machine: Path) -> FrozenTrial | None:
    """The trial being trained: its TensorBoard run begun, RUNNING in the storage with its values sampled."""
    begun = {number for number, folder in trial_folders(machine, name).items() if has_events(folder)}
    if not begun:  # the storage is read only once the worker has made it (no race to create its tables)
        return None
    trials = optuna.load_study(study_name=name, storage=url).get_trials(states=(TrialState.RUNNING,))
    return next((t for t in trials if t.params and t.number in begun), None)


def test_a_killed_worker_s_trial_is_retried_and_the_rerun_completes_the_study(
    work: Path, storage: tuple[str, str]
) -> None:
    url, name = storage
    config = write_sweep(work, study_name=name)
    command = ("--config", str(config), "--storage", url, "--n-trials", str(N_TRIALS), "--set", STEPS)
    machine = work / "machine"
    machine.mkdir()

    worker = start_sweep(work, machine, *command)
    try:
        killed = wait_for(lambda: running_trial(url, name, machine), 120, "a trial to start training")
    finally:
        kill_worker(worker)
    study = optuna.load_study(study_name=name, storage=url)
    assert study.trials[killed.number].state == TrialState.RUNNING, "the kill came after the trial had finished"

    rerun = start_sweep(work, machine, *command)  # the same command, in the same place, at once
    assert finish(rerun) == 0, tail(machine)

    trials = study.get_trials()
    states = {state: [t for t in trials if t.state == state] for state in TrialState}
    # The heartbeat found the killed trial stale and failed it; nothing is left running or queued.
    assert [t.number for t in states[TrialState.FAIL]] == [killed.number], tail(machine)
    assert not states[TrialState.RUNNING] and not states[TrialState.WAITING]
    assert len(states[TrialState.COMPLETE]) == N_TRIALS, tail(machine)
    # RetryHeartbeatStaleTrialCallback queued a copy with the same values, and the rerun completed it.
    (retry,) = [t for t in trials if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) is not None]
    assert RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == killed.number
    assert RetryHeartbeatStaleTrialCallback.retry_history(retry) == [killed.number]
    assert retry.state == TrialState.COMPLETE and retry.number > killed.number
    assert retry.params == killed.params
    # The retry logged into its own run folder, not the killed trial's (whose user attributes it was copied with).
    folders = trial_folders(machine, name)
    assert retry.user_attrs["tensorboard"] == f"runs/sweeps/{name}/trial_{retry.number:04d}"
    assert has_events(folders[retry.number])
    assert sorted(folders) == sorted([killed.number] + [t.number for t in states[TrialState.COMPLETE]])
