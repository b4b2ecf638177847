"""The real optuna-dashboard server, on loopback, shows a finished sweep as Optuna stores it (through its HTTP API)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import optuna
import pytest
from helpers.sweeps import BIN, run_sweep, tiny_sweep, write_sweep

N_TRIALS = 2
SEARCHED = set(tiny_sweep()["search_space"])  # the dotted config keys, which name the Optuna parameters


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, optuna.Study]:
    """A finished tiny sweep in a SQLite file: (its storage URL, the study as optuna reads it)."""
    work = tmp_path_factory.mktemp("sweep")
    url = f"sqlite:///{work / 'study.db'}"
    result = run_sweep(work, "--config", str(write_sweep(work)), "--storage", url, "--n-trials", str(N_TRIALS))
    assert result.returncode == 0, result.stderr[-3000:]
    return url, optuna.load_study(study_name="tiny", storage=url)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(base: str, path: str) -> tuple[int, str, bytes]:
    """(status, content type, body) of GET base + path."""
    with urllib.request.urlopen(base + path, timeout=10) as response:
        return response.status, response.headers.get_content_type(), response.read()


def get_json(base: str, path: str) -> Any:
    status, kind, body = get(base, path)
    assert (status, kind) == (200, "application/json"), path
    return json.loads(body)


@pytest.fixture(scope="module")
def dashboard(study: tuple[str, optuna.Study], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of `optuna-dashboard STORAGE` (the installed console script) on 127.0.0.1; stopped afterwards."""
    url, _ = study
    port = free_port()
    log_path = tmp_path_factory.mktemp("dashboard") / "dashboard.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [str(BIN / "optuna-dashboard"), url, "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"optuna-dashboard exited with {server.returncode}:\n{log_path.read_text()}")
            try:
                get(base, "/api/meta")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    pytest.fail(f"optuna-dashboard did not answer on {base} within 60 s:\n{log_path.read_text()}")
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def test_the_dashboard_lists_the_study(study: tuple[str, optuna.Study], dashboard: str) -> None:
    _, stored = study
    (summary,) = get_json(dashboard, "/api/studies")["study_summaries"]
    assert summary["study_id"] == stored._study_id
    assert summary["study_name"] == "tiny"
    assert summary["directions"] == ["maximize"]
    status, kind, _ = get(dashboard, f"/dashboard/studies/{stored._study_id}")  # the page a browser opens
    assert (status, kind) == (200, "text/html")


def test_the_dashboard_shows_every_trial_as_optuna_stores_it(study: tuple[str, optuna.Study], dashboard: str) -> None:
    _, stored = study
    detail = get_json(dashboard, f"/api/studies/{stored._study_id}")
    assert detail["name"] == "tiny" and detail["directions"] == ["maximize"]
    assert {space["name"] for space in detail["union_search_space"]} == SEARCHED
    assert [trial["number"] for trial in detail["best_trials"]] == [stored.best_trial.number]

    trials = stored.get_trials()
    assert len(trials) == N_TRIALS
    assert [shown["number"] for shown in detail["trials"]] == [trial.number for trial in trials]
    for shown, trial in zip(detail["trials"], trials, strict=True):
        assert shown["state"] == "Complete" == trial.state.name.capitalize()
        assert shown["values"] == trial.values
        # Parameters are named by the dotted config keys; values as stored (the internal value is exact).
        params = {param["name"]: param for param in shown["params"]}
        assert set(params) == set(trial.params) == SEARCHED
        for name, value in trial.params.items():
            assert params[name]["param_internal_value"] == trial.distributions[name].to_internal_repr(value)
            assert params[name]["param_external_value"] == str(value)
        # User attributes (the dashboard shows them as text): per-task validation accuracy and the TensorBoard run.
        attrs = {attr["key"]: attr["value"] for attr in shown["user_attrs"]}
        assert attrs == {
            key: value if isinstance(value, str) else str(value) for key, value in trial.user_attrs.items()
        }
        assert float(attrs["val_acc/listops"]) == trial.user_attrs["val_acc/listops"] == trial.value
        assert attrs["tensorboard"] == f"runs/sweeps/tiny/trial_{trial.number:04d}"
