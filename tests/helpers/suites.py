"""Tiny suite files (generated ListOps, a tiny release-layout Pathfinder), `lra suite` in this process or as a
worker in the background, and readers of what a suite folder holds."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from helpers.pathfinder import write_pathfinder
from helpers.runs import BIN, start_in_background
from lra.suite.budget import Budget
from lra.suite.cell import read_record, write_record
from lra.suite.grid import Cell
from lra.suite.runner import prepare

SHARED = {  # every task: 4 steps validated at 2 and 4, a one-layer dim-16 encoder
    "trainer.max_steps": 4,
    "trainer.val_check_interval": 2,
    "trainer.log_every_n_steps": 2,
    "trainer.enable_progress_bar": False,
    "trainer.enable_model_summary": False,
    "trainer.num_sanity_val_steps": 0,
    "model.depth": 1,
    "model.dim": 16,
    "model.ffn_dim": 32,
    "data.num_workers": 0,
    "data.eval_batches": 2,
}
LISTOPS = {
    "data.num_train": 96, "data.num_val": 40, "data.num_test": 40,
    "data.spec.max_depth": 4, "data.spec.min_length": 5, "data.spec.max_length": 60,
    "data.max_length": 64, "data.batch_size": 16,
}  # fmt: skip
ENCODERS = {"nala": {}, "softmax": {"model.attention": "softmax", "model.attention_kwargs": {}}}


def write_suite(folder: Path, **changes: Any) -> Path:
    """folder/tiny.yaml: ListOps (generated) and Pathfinder (a 40-image release-layout folder), both tiny."""
    pathfinder = folder / "pathfinder_data"
    if not pathfinder.exists():
        write_pathfinder(pathfinder, n=40)
    suite = {
        "tasks": ["listops", "pathfinder"],
        "set": {**SHARED, "data.cache_dir": str(folder / "cache")},
        "task_set": {"listops": LISTOPS, "pathfinder": {"data.root": str(pathfinder), "data.batch_size": 8}},
        **changes,
    }
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def write_grid(folder: Path, name: str = "grid.yaml", **changes: Any) -> Path:
    """folder/grid.yaml: tiny ListOps only, the encoders nala and softmax, seeds 0 and 1 (four cells)."""
    grid = {
        "tasks": ["listops"],
        "encoders": ENCODERS,
        "seeds": [0, 1],
        "set": {**SHARED, **LISTOPS},
        "heartbeat": {"interval": 1, "grace_period": 4, "max_retry": 2},
        **changes,
    }
    path = folder / name
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path


def suite(*argv: str) -> tuple[int, str, str]:
    """lra.suite.command.main(argv) in this process: exit status, stdout, stderr."""
    from lra.suite.command import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


def suite_env(cache: Path) -> dict[str, str]:
    return {**os.environ, "LRA_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1"}


def start_suite(cwd: Path, cache: Path, *args: str, log: str = "suite.log") -> subprocess.Popen[bytes]:
    """`lra suite ARGS` in the background in `cwd`, its output in cwd/<log>; it leads its own process group, so
    killing the group takes its cells' processes too, as a machine's death would."""
    return start_in_background([str(BIN / "lra"), "suite", *args], cwd, suite_env(cache), cwd / log)


def record_cell(out: Path, cell: Cell, status: str, **fields: Any) -> dict[str, Any]:
    """A cell record as the runner and the cell write it, ended with `status` and `fields` (e.g. test_acc)."""
    folder = prepare(cell, out, Budget(), None, child=False)
    record = {**read_record(folder), "status": status, **fields}  # type: ignore[dict-item]
    write_record(folder, record)
    return record


def results_of(out: Path) -> dict[str, Any]:
    return json.loads((out / "results.json").read_text())


def val_steps(folder: Path) -> list[int]:
    """The step of every val/acc event in a cell's event files, in the order the files were written."""
    steps = []
    for events in sorted(folder.glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        if "val/acc" in accumulator.Tags()["scalars"]:
            steps += [event.step for event in accumulator.Scalars("val/acc")]
    return steps
