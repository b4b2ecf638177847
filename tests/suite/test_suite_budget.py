"""Budgets: a cell whose time budget is shorter than its schedule is reported cut short at the step it reached (no
test score), is skipped by a re-run with the same budget and continued by one with a larger budget; the grid's
budget cuts the running cell and starts no other."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.runs import scalars
from helpers.suites import LISTOPS, SHARED, results_of, suite, val_steps, write_grid
from lightning.pytorch.callbacks import Callback

import lra.suite.cell
from lra.training.run import TaskRun

STEPS = {**SHARED, **LISTOPS, "trainer.max_steps": 40, "trainer.val_check_interval": 5}
KEY = "listops/nala/seed0"


class Slow(Callback):
    """Every training step takes at least 50 ms, so 40 steps take 2 s or more on any machine."""

    def on_train_batch_end(self, *args: Any) -> None:
        time.sleep(0.05)


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch) -> None:
    fit_task = lra.suite.cell.fit_task

    def slowed(*args: Any, callbacks: Any = (), **kwargs: Any) -> TaskRun:
        return fit_task(*args, **kwargs, callbacks=[*callbacks, Slow()])

    monkeypatch.setattr(lra.suite.cell, "fit_task", slowed)


@pytest.mark.usefixtures("slow")
def test_a_cell_cut_short_by_its_budget_is_reported_so_and_continued_by_a_larger_budget(tmp_path: Path) -> None:
    config = write_grid(tmp_path, encoders={"nala": {}}, seeds=[0], set=STEPS)
    out = tmp_path / "out"
    status, stdout, stderr = suite("--config", str(config), "--out", str(out), "--cell-budget", "1s")
    assert status == 0, stderr[-3000:]
    record = results_of(out)["cells"][KEY]
    steps = record["steps"]
    assert record["status"] == "cut short" and record["cut_by"] == "cell budget" and 0 < steps < 40
    assert "test_acc" not in record and "test/acc" not in scalars(out / KEY)  # never a finished number
    last = out / KEY / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == steps  # saved at the step it reached
    assert f"{KEY}: cut short by its cell budget (1s) at step {steps} of 40: no test score" in stdout
    text = (out / "results.md").read_text()
    assert "| **nala** | cut short | — | — | — | — | — |" in text
    assert f"- `{KEY}`: cut short by its cell budget (1s) at step {steps} of 40" in text

    status, stdout, _ = suite("--config", str(config), "--out", str(out), "--cell-budget", "1s")
    assert status == 0 and f"{KEY}: cut short at step {steps} by its cell budget (1s), skipped" in stdout
    assert "nothing to train" in stdout and results_of(out)["cells"][KEY]["steps"] == steps

    status, stdout, stderr = suite("--config", str(config), "--out", str(out), "--cell-budget", "1h")
    assert status == 0, stderr[-3000:]
    assert f"{KEY}: continuing from {last}" in stdout
    record = results_of(out)["cells"][KEY]
    assert record["status"] == "finished" and record["steps"] == 40
    logged = scalars(out / KEY)
    assert logged["test/acc"] == pytest.approx([record["test_acc"]])
    # Every fifth step once and no other: the continued run went on where the cut left it, on the schedule of an
    # uninterrupted run (the cut adds no validation of its own).
    validated = val_steps(out / KEY)
    assert validated == list(range(4, 40, 5))
    assert "| **nala** | " + f"{100 * record['test_acc']:.2f} (1) |" in (out / "results.md").read_text()


@pytest.mark.usefixtures("slow")
def test_the_grid_budget_cuts_the_running_cell_and_starts_no_other(tmp_path: Path) -> None:
    config = write_grid(tmp_path, encoders={"nala": {}}, seeds=[0, 1], set=STEPS, budget={"grid": "2s"})
    out = tmp_path / "out"
    status, stdout, stderr = suite("--config", str(config), "--out", str(out))
    assert status == 0, stderr[-3000:]
    cells = results_of(out)["cells"]
    assert list(cells) == [KEY] and cells[KEY]["status"] == "cut short" and cells[KEY]["cut_by"] == "grid budget"
    assert cells[KEY]["steps"] < 40 and not (out / "listops/nala/seed1").exists()
    assert "the grid's budget (2s) is spent: no further cells started" in stdout
