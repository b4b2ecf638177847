"""The results of a grid, from hand-made cell records: mean ± sample std per encoder and task, the LRA average with
its spread, results.md with the published rows and the cells that have no test score."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.suites import record_cell, results_of

from lra.data.tasks import AVERAGED_TASKS
from lra.suite.config import load_suite_config
from lra.suite.grid import grid_cells
from lra.suite.report import Stat, lra_average, stat, summarize, write_results


def test_mean_and_sample_std_on_hand_made_values() -> None:
    assert stat([0.30, 0.40, 0.50]) == Stat(pytest.approx(0.40), pytest.approx(0.10), 3)  # sqrt(0.02 / (3 - 1))
    assert stat([0.36, 0.38]) == Stat(pytest.approx(0.37), pytest.approx(math.sqrt(0.0002)), 2)
    assert stat([0.5]) == Stat(0.5, None, 1)  # one seed: no spread


def test_mean_and_std_agree_with_numpy_ddof_1() -> None:
    values = np.random.default_rng(0).uniform(0.2, 0.8, size=7)
    result = stat(values.tolist())
    assert result.mean == pytest.approx(values.mean()) and result.std == pytest.approx(values.std(ddof=1))


def test_lra_average_is_the_mean_of_task_means_with_the_spread_of_one_seeds_average() -> None:
    means = {"listops": 0.37, "text": 0.64, "retrieval": 0.80, "image": 0.42, "pathfinder": 0.72}
    stds = {"listops": 0.01, "text": 0.02, "retrieval": 0.02, "image": 0.04, "pathfinder": 0.0}
    by_column = {task: Stat(means[task], stds[task], 3) for task in AVERAGED_TASKS}
    average, over = lra_average({**by_column, "pathx": Stat(0.5, 0.1, 3)})  # Path-X: never in the average
    assert over == list(AVERAGED_TASKS)
    assert average == Stat(pytest.approx(0.59), pytest.approx(0.01), 5)  # sqrt(.0001+.0004+.0004+.0016+0) / 5
    # The same, in expectation, as the spread of per-seed averages: check by simulation with independent tasks.
    rng = np.random.default_rng(1)
    draws = np.mean([rng.normal(means[t], stds[t], size=200_000) for t in AVERAGED_TASKS], axis=0)
    assert draws.std(ddof=1) == pytest.approx(0.01, rel=0.02)
    partial, covered = lra_average({"text": Stat(0.6, None, 1), "listops": Stat(0.4, 0.02, 2)})
    assert covered == ["listops", "text"] and partial == Stat(pytest.approx(0.5), None, 2)  # a task with n = 1


def test_results_of_a_grid_with_finished_cut_short_and_failed_cells(tmp_path: Path) -> None:
    path = tmp_path / "grid.yaml"
    encoders = {"nala": {}, "softmax": {"model.attention": "softmax", "model.attention_kwargs": {}}}
    path.write_text(yaml.safe_dump({"tasks": ["listops", "text"], "encoders": encoders, "seeds": [0, 1, 2]}))
    cells = {cell.key: cell for cell in grid_cells(load_suite_config(path), {})}
    accuracies = {
        "listops/nala": [0.36, 0.38, 0.40],
        "text/nala": [0.60, 0.64, 0.68],
        "listops/softmax": [0.35, 0.39],  # seed 2 cut short
    }
    for pair, values in accuracies.items():
        for seed, value in enumerate(values):
            record_cell(tmp_path, cells[f"{pair}/seed{seed}"], "finished", test_acc=value)
    record_cell(tmp_path, cells["listops/softmax/seed2"], "cut short", cut_by="cell budget", cell_budget=600, steps=812)
    record_cell(tmp_path, cells["text/softmax/seed0"], "failed", error="OSError: disk full")
    write_results(tmp_path, str(path), ["nala", "softmax"])
    table = results_of(tmp_path)["table"]

    nala = table["nala"]
    assert nala["tasks"]["listops"]["mean"] == pytest.approx(0.38) and nala["tasks"]["listops"]["std"] == pytest.approx(
        0.02
    )
    assert nala["tasks"]["text"]["mean"] == pytest.approx(0.64) and nala["tasks"]["text"]["std"] == pytest.approx(0.04)
    assert nala["average"]["mean"] == pytest.approx(0.51)
    assert nala["average"]["std"] == pytest.approx(math.sqrt(0.02**2 + 0.04**2) / 2)
    softmax = table["softmax"]["tasks"]
    assert softmax["listops"]["seeds"] == [0, 1] and softmax["listops"]["cut_short"] == [2]
    assert softmax["listops"]["std"] == pytest.approx(statistics.stdev([0.35, 0.39]))
    assert softmax["text"]["n"] == 0 and softmax["text"]["unfinished"] == [0]
    assert table["softmax"]["average"]["over"] == ["listops"]

    text = (tmp_path / "results.md").read_text()
    assert "| model | ListOps | Text | Retrieval | Image | Pathfinder | avg |" in text
    assert "| **nala** | 38.00 ± 2.00 (3) | 64.00 ± 4.00 (3) | — | — | — | 51.00 ± 2.24\\* |" in text
    assert "| **softmax** | 37.00 ± 2.83 (2) | pending | — | — | — | 37.00 ± 2.83\\* |" in text
    assert "| Transformer (softmax) | 38.71 | 61.55 | 80.93 | 39.14 | 70.39 | 58.14 |" in text
    assert "mean ± sample standard deviation (ddof = 1)" in text
    assert "- `listops/softmax/seed2`: cut short by its cell budget (10m) at step 812 of 50000" in text
    assert (
        f"- `text/softmax/seed0`: failed (OSError: disk full); log: `{tmp_path / 'text/softmax/seed0/cell.log'}`"
        in text
    )
    assert "`softmax`: attention `softmax` (`model.attention=softmax`, `model.attention_kwargs={}`)" in text
    assert "**Seeds:** 0, 1, 2" in text and "`faithful`" in text
    assert summarize({}, []) == {}
