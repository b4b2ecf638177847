"""A worker killed (SIGKILL) in the middle of a trial loses nothing: re-running the command retries that trial, from
the killed trial's checkpoint, to the numbers of a run that was never interrupted.

On SQLite under the test's folder always; on PostgreSQL too when LRA_TEST_POSTGRES_URL is set (CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import torch
from helpers.runs import scalars
from helpers.sweep_workers import (
    finish,
    has_events,
    kill_worker,
    log_of,
    postgres_study,
    start_sweep,
    tail,
    trial_folders,
    wait_for,
)
from helpers.sweeps import write_sweep
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
    # The retry continued the killed trial's run, in its folder: one run folder per trial that was started anew.
    folders = trial_folders(machine, name)
    assert retry.user_attrs["tensorboard"] == f"runs/sweeps/{name}/trial_{killed.number:04d}"
    assert has_events(folders[killed.number]) and retry.number not in folders
    assert sorted(folders) == sorted([killed.number] + [t.number for t in states[TrialState.COMPLETE] if t != retry])
    last = folders[killed.number] / "listops" / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 12


def test_a_trial_killed_part_way_is_retried_from_its_checkpoint_to_the_numbers_of_an_uninterrupted_run(
    work: Path,
) -> None:
    """SQLite; the same first trial (seeded sampler) run without interruption in a twin study for comparison."""
    config = write_sweep(work)
    command = ("--config", str(config), "--storage", "sqlite:///study.db", "--n-trials", "1", "--set", STEPS)
    twin, machine = work / "twin", work / "machine"
    twin.mkdir()
    machine.mkdir()
    assert finish(start_sweep(work, twin, *command)) == 0, tail(twin)

    checkpoint = machine / "runs" / "sweeps" / "tiny" / "trial_0000" / "listops" / "checkpoints" / "last.ckpt"
    worker = start_sweep(work, machine, *command)
    try:
        wait_for(checkpoint.is_file, 120, "the trial's first checkpoint", interval=0.02)
    finally:
        kill_worker(worker)
    killed_at = torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"]
    assert killed_at < 12, "the kill came after the trial had finished"
    assert finish(start_sweep(work, machine, *command)) == 0, tail(machine)
    assert f"resuming runs/sweeps/tiny/trial_0000/listops from step {killed_at}" in log_of(machine)

    study, reference = (
        optuna.load_study(study_name="tiny", storage=f"sqlite:///{folder}/study.db") for folder in (machine, twin)
    )
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert study.trials[1].params == reference.trials[0].params
    assert study.trials[1].value == reference.trials[0].value
    runs = [folder / "runs" / "sweeps" / "tiny" / "trial_0000" / "listops" for folder in (machine, twin)]
    weights, twin_weights = (
        torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
        for run in runs
    )
    assert all(torch.equal(weights[key], value) for key, value in twin_weights.items())
    assert scalars(runs[0]) == scalars(runs[1])
