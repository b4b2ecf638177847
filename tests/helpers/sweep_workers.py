"""`lra sweep` workers run in the background (the distributed and fault tests), and the test PostgreSQL database."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import optuna
import pytest

from helpers.runs import BIN, start_in_background
from helpers.sweeps import sweep_env

POSTGRES_URL_VARIABLE = "LRA_TEST_POSTGRES_URL"


def postgres_url() -> str:
    """The database URL .ci/run exports (a throwaway server from .ci/postgres); skips the test when unset."""
    url = os.environ.get(POSTGRES_URL_VARIABLE)
    if not url:
        pytest.skip(f"{POSTGRES_URL_VARIABLE} is not set: no PostgreSQL server to test against (.ci/run starts one)")
    return url


@contextmanager
def postgres_study(prefix: str) -> Iterator[tuple[str, str]]:
    """(URL, a study name no other test uses); the study is deleted from the database afterwards."""
    url = postgres_url()
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    try:
        yield url, name
    finally:
        with suppress(KeyError):  # KeyError: the test failed before any worker created the study
            optuna.delete_study(study_name=name, storage=url)


def start_sweep(work: Path, cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    """`lra sweep ARGS` started in the background in `cwd`, its output added to cwd/sweep.log.

    It leads its own process group, so `kill_worker` takes it and anything it started, as a machine's death would.
    """
    return start_in_background([str(BIN / "lra"), "sweep", *args], cwd, sweep_env(work), cwd / "sweep.log")


def finish(worker: subprocess.Popen[bytes], timeout: float = 240) -> int:
    """The worker's exit status; a worker still running after `timeout` s is killed and fails the test."""
    try:
        return worker.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_worker(worker)
        pytest.fail(f"`lra sweep` (pid {worker.pid}) still ran after {timeout} s: killed")


def kill_worker(worker: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the worker's whole process group: no clean-up, no last heartbeat, nothing told to the storage."""
    with suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)


def log_of(cwd: Path) -> str:
    return (cwd / "sweep.log").read_text(errors="replace")


def tail(cwd: Path, lines: int = 40) -> str:
    return f"--- {cwd / 'sweep.log'} (last {lines} lines) ---\n" + "\n".join(log_of(cwd).splitlines()[-lines:])


def logged_trials(log: str, outcome: str) -> set[int]:
    """Numbers of the trials Optuna's log says `finished` (with a value) or `failed` in this worker."""
    return {int(number) for number in re.findall(rf"Trial (\d+) {outcome} with", log)}


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> object:
    """Poll `condition` until it returns something truthy (and return that), or fail the test naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def trial_folders(cwd: Path, study_name: str) -> dict[int, Path]:
    """The trial_NNNN run folders a worker in `cwd` wrote, by trial number."""
    root = cwd / "runs" / "sweeps" / study_name
    return {int(folder.name.removeprefix("trial_")): folder for folder in sorted(root.glob("trial_*"))}


def has_events(folder: Path) -> bool:
    """The trial's task run has TensorBoard event files."""
    return any(folder.glob("*/events.out.tfevents.*"))
