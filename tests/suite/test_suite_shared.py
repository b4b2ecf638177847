"""`lra suite --storage URL`: workers fill one grid through an Optuna study whose trials are the cells.

A worker killed (SIGKILL, with its cells' processes) in the middle of a cell: the re-run fails the silent trial
through the heartbeat, takes the retry and continues the cell from its last.ckpt (on SQLite always). Two workers on
PostgreSQL (when LRA_TEST_POSTGRES_URL is set, as in CI) fill one grid with every cell trained exactly once.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import optuna
import pytest
from helpers.runs import scalars
from helpers.suites import LISTOPS, SHARED, results_of, start_suite, val_steps, write_grid
from helpers.sweep_workers import kill_worker, postgres_study, wait_for
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from lra.suite.cell import read_record

LONGER = {**SHARED, **LISTOPS, "trainer.max_steps": 24, "trainer.val_check_interval": 3}


def finish(worker: subprocess.Popen[bytes], log: Path, timeout: float = 600) -> int:
    try:
        return worker.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_worker(worker)
        pytest.fail(f"`lra suite` still ran after {timeout} s:\n{log.read_text()[-3000:]}")


def trials_by_cell(url: str, name: str) -> dict[str, list[optuna.trial.FrozenTrial]]:
    trials: dict[str, list[optuna.trial.FrozenTrial]] = {}
    for trial in optuna.load_study(study_name=name, storage=url).get_trials():
        trials.setdefault(trial.user_attrs["cell"], []).append(trial)
    return trials


def training_cell(out: Path) -> str | None:
    """A cell that has a last.ckpt and is still training."""
    for path in sorted(out.glob("listops/*/seed*/checkpoints/last.ckpt")):
        folder = path.parent.parent
        record = read_record(folder)
        if record is not None and record["status"] == "running":
            return f"listops/{folder.parent.name}/{folder.name}"
    return None


def test_a_killed_workers_cell_is_retried_and_continued_from_its_last_checkpoint(tmp_path: Path) -> None:
    config = write_grid(tmp_path, encoders={"nala": {}}, seeds=[0, 1], set=LONGER)
    out, url, name = tmp_path / "out", f"sqlite:///{tmp_path / 'grid.db'}", "killed"
    command = ("--config", str(config), "--out", str(out), "--storage", url, "--study-name", name, "--jobs", "2")
    worker = start_suite(tmp_path, tmp_path / "cache", *command)
    try:
        killed = wait_for(lambda: training_cell(out), 300, "a cell to save its last.ckpt")
    finally:
        kill_worker(worker)  # the worker and its cells' processes, as a machine's death
    assert read_record(out / killed)["status"] == "running"  # killed mid-cell: nobody wrote its end
    assert scalars(out / killed)["val/acc"]  # it had validated (and saved last.ckpt) before the kill

    rerun = start_suite(tmp_path, tmp_path / "cache", *command, log="rerun.log")
    log = tmp_path / "rerun.log"
    assert finish(rerun, log) == 0, log.read_text()[-3000:]
    assert f"{killed}: continuing from {out / killed / 'checkpoints' / 'last.ckpt'}" in log.read_text()

    by_cell = trials_by_cell(url, name)
    assert sorted(by_cell) == ["listops/nala/seed0", "listops/nala/seed1"]
    for key, trials in by_cell.items():
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        assert len(complete) == 1 and not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        failed = [t for t in trials if t.state == TrialState.FAIL]  # the killed worker's trial, failed as stale
        if key == killed:
            assert failed
        if failed:
            assert RetryHeartbeatStaleTrialCallback.retried_trial_number(complete[0]) == failed[0].number
        record = results_of(out)["cells"][key]
        assert record["status"] == "finished" and record["steps"] == 24
        assert complete[0].value == pytest.approx(record["test_acc"])
        logged = scalars(out / key)
        # Every third step, continued, not done again: once each, but for a validation the kill may have cut between
        # its log line and its last.ckpt (done again by the continued run).
        validated = val_steps(out / key)
        assert sorted(set(validated)) == list(range(2, 24, 3)) and len(validated) - len(set(validated)) <= 1
        assert logged["test/acc"] == pytest.approx([record["test_acc"]])


@pytest.fixture
def postgres() -> tuple[str, str]:
    with postgres_study("suite") as url_and_name:
        yield url_and_name


def test_two_workers_on_postgresql_fill_one_grid_with_every_cell_once(
    tmp_path: Path, postgres: tuple[str, str]
) -> None:
    url, name = postgres
    config, out = write_grid(tmp_path), tmp_path / "shared" / "out"  # out: the folder both machines mount
    machines = [tmp_path / f"machine{index}" for index in range(2)]
    workers = []
    for machine in machines:  # started together on an empty grid: both queue its cells, duplicates are failed unrun
        machine.mkdir()
        command = ("--config", str(config), "--out", str(out), "--storage", url, "--study-name", name)
        workers.append(start_suite(machine, tmp_path / "cache", *command))
    codes = [finish(worker, machine / "suite.log") for worker, machine in zip(workers, machines, strict=True)]
    logs = "\n".join((machine / "suite.log").read_text()[-2000:] for machine in machines)
    assert codes == [0, 0], logs

    by_cell = trials_by_cell(url, name)
    keys = [f"listops/{encoder}/seed{seed}" for seed in (0, 1) for encoder in ("nala", "softmax")]
    assert sorted(by_cell) == sorted(keys)
    ran = {key: [] for key in keys}
    for machine in machines:
        for key in keys:
            if f"{key}: training in" in (machine / "suite.log").read_text():
                ran[key].append(machine.name)
    assert all(len(machines_) == 1 for machines_ in ran.values()), ran  # every cell trained on one machine, once
    for key, trials in by_cell.items():
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        assert len(complete) == 1, logs
        assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        for trial in trials:
            if trial.state == TrialState.FAIL:
                assert trial.user_attrs["duplicate_of"] in {t.number for t in trials}  # failed unrun
        logged = scalars(out / key)
        assert len(logged["test/acc"]) == 1 and len(logged["val/acc"]) == 2  # one training: steps 2 and 4
        assert complete[0].value == pytest.approx(results_of(out)["cells"][key]["test_acc"])
