"""Two `lra sweep` workers, as on two machines, share one PostgreSQL-backed study: each trial runs once, none is lost.

Needs a PostgreSQL server: CI's .ci/run starts one and exports LRA_TEST_POSTGRES_URL; without it the test is skipped.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from helpers.sweep_workers import (
    finish,
    has_events,
    log_of,
    logged_trials,
    postgres_study,
    postgres_url,
    start_sweep,
    tail,
    trial_folders,
)
from helpers.sweeps import write_sweep
from optuna.trial import TrialState

from lra.sweep.config import Heartbeat, SweepConfig
from lra.sweep.study import build_storage

N_TRIALS = 6
WORKERS = 2


@pytest.fixture
def study() -> Iterator[tuple[str, str]]:
    with postgres_study("distributed") as url_and_name:
        yield url_and_name


def test_two_workers_complete_the_requested_trials_once(work: Path, study: tuple[str, str]) -> None:
    url, name = study
    # A generous grace period: on a busy CI machine a live trial's heartbeat may lag, and the other worker would
    # then fail it as stale (stale trials are test_faults.py's business).
    config = write_sweep(work, study_name=name, heartbeat={"interval": 1, "grace_period": 30, "max_retry": 1})
    # One working folder per worker, as on separate machines: a trial's run folder shows which worker ran it.
    machines = [work / f"machine{seed}" for seed in range(WORKERS)]
    workers = []
    for seed, machine in enumerate(machines):  # started together, each with its own sampler seed
        machine.mkdir()
        args = ("--config", str(config), "--storage", url, "--n-trials", str(N_TRIALS), "--seed", str(seed))
        workers.append(start_sweep(work, machine, *args))
    codes = [finish(worker) for worker in workers]
    logs = "\n".join(tail(machine) for machine in machines)
    assert codes == [0] * WORKERS, logs

    trials = optuna.load_study(study_name=name, storage=url).get_trials()
    states = {state: [t for t in trials if t.state == state] for state in TrialState}
    complete = {t.number: t for t in states[TrialState.COMPLETE]}
    assert len(complete) == N_TRIALS, logs
    assert sorted(t.number for t in trials) == list(range(len(trials))), "trial numbers are distinct and gapless"
    assert not states[TrialState.RUNNING] and not states[TrialState.WAITING], "no trial is left unfinished"
    assert not states[TrialState.PRUNED]  # the tiny sweep has no pruner
    # Two workers that start the last trial at once make one too many; run_until fails that one before it samples
    # or trains anything (SurplusTrialError), so at most WORKERS - 1 such empty failures, each said in a log.
    surplus = states[TrialState.FAIL]
    assert len(surplus) <= WORKERS - 1, logs
    for trial in surplus:
        assert not trial.params and not trial.user_attrs
        said = f"Trial {trial.number} failed with parameters: {{}} because of the following error: SurplusTrialError"
        assert sum(said in log_of(machine) for machine in machines) == 1, logs

    # Each completed trial was run by exactly one worker: one run folder, with TensorBoard events, on one machine.
    ran = [trial_folders(machine, name) for machine in machines]
    assert all(ran), f"each worker ran at least one trial: {[sorted(r) for r in ran]}"
    assert not set(ran[0]) & set(ran[1]), f"a trial ran on both machines: {[sorted(r) for r in ran]}"
    assert set(ran[0]) | set(ran[1]) == set(complete)
    for machine, folders in zip(machines, ran, strict=True):
        assert logged_trials(log_of(machine), "finished") == set(folders)
        for number, folder in folders.items():
            assert has_events(folder), f"no TensorBoard events under {folder}"
            assert machine / complete[number].user_attrs["tensorboard"] == folder
            assert complete[number].user_attrs["val_acc/listops"] == complete[number].value
    # Their own seeds: the workers did not sample the same points.
    points = [tuple(sorted(t.params.items())) for t in complete.values()]
    assert len(set(points)) == N_TRIALS


@pytest.fixture
def empty_schema() -> Iterator[tuple[str, str]]:
    """(URL, name) of an empty PostgreSQL schema, where that URL's tables go (as in a fresh database); dropped after."""
    url = postgres_url()
    schema = f"empty_{uuid.uuid4().hex[:10]}"
    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    try:
        separator = "&" if "?" in url else "?"
        yield f"{url}{separator}options=-csearch_path%3D{schema}", schema
    finally:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


def test_workers_started_together_on_an_empty_database_all_connect(empty_schema: tuple[str, str]) -> None:
    url, schema = empty_schema
    # Each worker's first connection creates Optuna's tables, and PostgreSQL lets sessions race on CREATE TABLE;
    # threads, each with its own connection, make the race certain (released together by a barrier).
    config = SweepConfig(
        path=Path("race.yaml"), study_name="race", tasks=("listops",), objective="listops", direction="maximize",
        n_trials=1, search_space=(), heartbeat=Heartbeat(interval=1, grace_period=3, max_retry=1),
    )  # fmt: skip
    barrier = threading.Barrier(4)

    def connect() -> None:
        barrier.wait(timeout=30)
        build_storage(url, config.heartbeat).engine.dispose()

    with ThreadPoolExecutor(max_workers=4) as pool:
        for connection in [pool.submit(connect) for _ in range(4)]:
            connection.result(timeout=60)  # a lost race was a ConfigError("... UniqueViolation ...")
    engine = sqlalchemy.create_engine(postgres_url())
    assert "studies" in sqlalchemy.inspect(engine).get_table_names(schema=schema), "the tables went elsewhere"
    engine.dispose()
