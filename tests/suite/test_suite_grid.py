"""The grid of a suite file: cells (task × encoder × seed) and their configs, selections, budgets; no training."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers.suites import ENCODERS, LISTOPS, write_suite

from lra.overrides import ConfigError
from lra.suite.budget import Budget, max_time, parse_budget, parse_duration, shown
from lra.suite.config import load_suite_config, select_encoders, select_seeds, suite_tasks
from lra.suite.grid import grid_cells, without_run_keys
from lra.training.run import check_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def grid(tmp_path: Path) -> Path:
    return write_suite(tmp_path, encoders=ENCODERS, seeds=[3, 1], budget={"cell": "1h30m", "grid": "00:12:00:00"})


def test_cells_go_seed_by_seed_with_the_encoder_before_the_command_line(grid: Path) -> None:
    suite = load_suite_config(grid)
    cells = grid_cells(suite, {"model.dim": 8})
    assert [cell.key for cell in cells] == [
        f"{task}/{encoder}/seed{seed}"
        for seed in (3, 1)
        for task in ("listops", "pathfinder")
        for encoder in ("nala", "softmax")
    ]
    base = {task.name: task.config for task in suite_tasks(suite, {"model.dim": 8})}
    for cell in cells:
        config = cell.config
        assert config["seed_everything"] == cell.seed  # the training seed ...
        expected_data = base[cell.task.name]["data"]
        assert config["data"] == expected_data  # ... and the data (their own data.seed) the same for every seed
        assert config["model"]["dim"] == 8  # --set on top
        assert config["model"]["depth"] == 1  # the suite's set
        softmax = cell.encoder == "softmax"
        assert config["model"]["attention"] == ("softmax" if softmax else "nala")
        assert config["model"]["attention_kwargs"] == ({} if softmax else {"alpha": 3.0, "beta": 0.5})
        assert cell.task.overrides["data.batch_size"] == (8 if cell.task.name == "pathfinder" else 16)
    assert len({cell.digest for cell in cells}) == len(cells)


def test_the_digest_leaves_out_what_each_run_sets(grid: Path) -> None:
    cell = grid_cells(load_suite_config(grid), {})[0]
    config = cell.config
    config["trainer"].update(max_time="00:01:00:00", enable_progress_bar=False)
    assert without_run_keys(config) == without_run_keys(cell.config)
    assert cell.digest == grid_cells(load_suite_config(grid), {})[0].digest
    assert cell.digest != grid_cells(load_suite_config(grid), {"trainer.max_steps": 5})[0].digest


def test_without_encoders_or_seeds_a_task_trains_its_own(tmp_path: Path) -> None:
    cells = grid_cells(load_suite_config(write_suite(tmp_path)), {})
    assert [cell.key for cell in cells] == ["listops/nala/seed42", "pathfinder/nala/seed42"]
    assert [cell.key for cell in grid_cells(load_suite_config(write_suite(tmp_path)), {"seed_everything": 7})] == [
        "listops/nala/seed7",
        "pathfinder/nala/seed7",
    ]
    mixed = write_suite(tmp_path, task_set={"listops": {**LISTOPS, "model.attention": "softmax"}})
    assert {cell.encoder for cell in grid_cells(load_suite_config(mixed), {})} == {"default"}


def test_selections_pick_encoders_and_replace_seeds(grid: Path) -> None:
    suite = load_suite_config(grid)
    picked = select_seeds(select_encoders(suite, "softmax"), "5, 6")
    assert [cell.key for cell in grid_cells(picked, {})] == [
        f"{task}/softmax/seed{seed}" for seed in (5, 6) for task in ("listops", "pathfinder")
    ]
    with pytest.raises(ConfigError, match=r"--encoders 'softmax,softmax': encoder 'softmax' appears more than once"):
        select_encoders(suite, "softmax,softmax")
    with pytest.raises(ConfigError, match=r"--seeds '1,x': expected a comma-separated list of integer seeds"):
        select_seeds(suite, "1,x")
    with pytest.raises(
        ConfigError, match=r"--seeds '-1': expected a non-empty list of integer seeds in \[0, 2\*\*32\)"
    ):
        select_seeds(suite, "-1")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("45m", 2700),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1d12h", 129600),
        ("1.5h", 5400),
        ("00:02:00:05", 7205),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text, "x") == seconds
    assert parse_duration(max_time(seconds), "x") == seconds  # Lightning's DD:HH:MM:SS round trip


@pytest.mark.parametrize("text", ["", "2 hours", "h", "0s", "1x", "10", 10, "1:2:3"])
def test_a_budget_that_is_not_a_duration_is_refused_by_key_and_value(text: object) -> None:
    with pytest.raises(ConfigError, match=r"^grid.yaml: budget.cell: .* is not a duration of at least 1 s; expected"):
        parse_budget({"cell": text}, "grid.yaml: budget")


def test_budget_keys_and_their_display(grid: Path) -> None:
    assert load_suite_config(grid).budget == Budget(cell=5400, grid=43200)
    assert (max_time(5400), shown(5400), shown(43200), shown(None)) == ("00:01:30:00", "1h30m", "12h", "none")
    with pytest.raises(ConfigError, match=r"budget: unknown key\(s\) cells; expected cell, grid"):
        parse_budget({"cells": "1h"}, "grid.yaml: budget")


def test_the_shipped_grid_is_three_encoders_over_three_seeds_that_all_build() -> None:
    suite = load_suite_config(REPO / "sweeps/suites/lra_grid.yaml")
    cells = grid_cells(suite, {})
    assert len(cells) == 5 * 3 * 3 and list(suite.encoders or {}) == ["nala", "softmax", "linear"]
    assert suite.seeds == (0, 1, 2)
    for cell in cells[:3]:  # ListOps (generated: no data needed to build it) with each encoder
        assert cell.task.name == "listops"
        check_config(cell.task.config, f"lra_grid.yaml: encoders[{cell.encoder!r}]")


def test_heartbeat_settings_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"tasks": ["listops"], "heartbeat": {"interval": "1m"}}))
    with pytest.raises(ConfigError, match=r"s.yaml: heartbeat.interval: expected a non-negative integer, got '1m'"):
        load_suite_config(path)
