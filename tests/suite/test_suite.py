"""`lra suite` end to end on tiny generated ListOps and a tiny official-layout Pathfinder folder (in-process, and once
through the real console script), with the task configs' own encoder and seed (one cell per task), plus its results
table and its errors, which come before any training."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from helpers.runs import scalars
from helpers.suites import record_cell, results_of, suite, write_suite
from lightning.pytorch.callbacks import Callback
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

import lra.suite.cell
from lra.data.tasks import AVERAGED_TASKS
from lra.overrides import digest
from lra.suite.command import default_out
from lra.suite.config import load_suite_config, suite_tasks
from lra.suite.grid import grid_cells
from lra.suite.report import write_results
from lra.training.run import TaskRun

REPO = Path(__file__).resolve().parents[2]
LRA = Path(sys.executable).parent / "lra"
CELLS = {"listops": "listops/nala/seed42", "pathfinder": "pathfinder/nala/seed42"}  # the task configs' encoder, seed
VALIDATED_AT = [2, 4]  # helpers.suites.SHARED: 4 steps validated every 2


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A finished two-task suite: (suite file, its folder, stdout)."""
    folder = tmp_path_factory.mktemp("suite")
    config, out = write_suite(folder), folder / "out"
    status, stdout, stderr = suite("--config", str(config), "--out", str(out))
    assert status == 0, stderr[-3000:]
    return config, out, stdout


def test_results_json_holds_each_tasks_logged_test_accuracy(finished: tuple[Path, Path, str]) -> None:
    config, out, stdout = finished
    results = results_of(out)
    assert list(results["cells"]) == list(CELLS.values())
    for name, key in CELLS.items():
        record = results["cells"][key]
        assert record["status"] == "finished" and record["task"] == name and record["seed"] == 42
        assert 0.0 <= record["test_acc"] <= 1.0 and 0.0 <= record["best_val_acc"] <= 1.0
        assert record["steps"] == 4 and record["column"] == name and record["log_dir"] == str(out / key)
        logged = scalars(out / key)
        assert logged["test/acc"] == pytest.approx([record["test_acc"]])
        assert max(logged["val/acc"]) == pytest.approx(record["best_val_acc"])
        best_step = VALIDATED_AT[logged["val/acc"].index(max(logged["val/acc"]))]  # the first of equal scores
        assert torch.load(record["best_checkpoint"], weights_only=False)["global_step"] == best_step
        assert record["overrides"]["model.dim"] == 16 and record["attention"].startswith("nala")
    cells = {cell.key: cell for cell in grid_cells(load_suite_config(config), {})}
    assert {key: record["config_digest"] for key, record in results["cells"].items()} == {
        key: cell.digest for key, cell in cells.items()
    }
    assert cells[CELLS["listops"]].config == {**suite_tasks(load_suite_config(config), {})[0].config}  # seed: 42
    accuracies = [results["cells"][key]["test_acc"] for key in CELLS.values()]
    row = results["table"]["nala"]
    assert [row["tasks"][name]["mean"] for name in CELLS] == pytest.approx(accuracies)
    assert [(row["tasks"][name]["n"], row["tasks"][name]["std"]) for name in CELLS] == [(1, None), (1, None)]
    assert row["average"]["mean"] == pytest.approx(statistics.fmean(accuracies)) and row["average"]["std"] is None
    assert row["average"]["over"] == ["listops", "pathfinder"] and row["average"]["complete"] is False
    assert f"pathfinder/nala/seed42: test acc {100 * accuracies[1]:.2f}%" in stdout


def test_suite_run_logs_each_task_and_the_average_with_its_settings(finished: tuple[Path, Path, str]) -> None:
    _, out, _ = finished
    cells = results_of(out)["cells"]
    logged = scalars(out / "suite" / "nala")
    listops, pathfinder = (cells[key]["test_acc"] for key in CELLS.values())
    assert logged["lra/listops"] == pytest.approx([listops, listops])  # the table after each of the two cells
    assert logged["lra/pathfinder"] == pytest.approx([pathfinder])
    assert logged["lra/average"] == pytest.approx([listops, statistics.fmean([listops, pathfinder])])
    (events,) = (out / "suite" / "nala").glob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    content = accumulator.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["model.dim"].number_value == 16
    assert hparams["tasks"].string_value == "listops,pathfinder"
    assert hparams["attention"].string_value.startswith("nala")
    assert hparams["pathfinder.data.batch_size"].number_value == 8


def test_results_md_puts_this_run_beside_the_published_rows(finished: tuple[Path, Path, str]) -> None:
    _, out, _ = finished
    results, text = results_of(out), (out / "results.md").read_text()
    listops, pathfinder = (100 * results["cells"][key]["test_acc"] for key in CELLS.values())
    average = 100 * results["table"]["nala"]["average"]["mean"]
    ours = f"| **nala** | {listops:.2f} (1) | — | — | — | {pathfinder:.2f} (1) | {average:.2f}\\* |"
    assert ours in text
    assert "| model | ListOps | Text | Retrieval | Image | Pathfinder | avg |" in text
    assert "| Transformer (softmax) | 38.71 | 61.55 | 80.93 | 39.14 | 70.39 | 58.14 |" in text
    assert "| NaLaFormer | — | — | — | — | — | 61.2 |" in text
    assert "covers 2 of the 5 LRA tasks (ListOps, Pathfinder)" in text
    assert "`nala`: attention `nala {alpha: 3.0, beta: 0.5}`" in text and "`model.dim=16`" in text
    assert "pathfinder only: " in text and "`data.batch_size=8`" in text


def test_rerun_through_the_console_script_skips_finished_tasks(finished: tuple[Path, Path, str]) -> None:
    config, out, _ = finished
    before = (out / "results.json").read_bytes(), sorted(out.rglob("*"))
    result = subprocess.run(
        [str(LRA), "suite", "--config", str(config), "--out", str(out)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "lra suite: listops/nala/seed42: already done" in result.stdout
    assert "lra suite: pathfinder/nala/seed42: already done" in result.stdout
    assert "skipped" in result.stdout and "nothing to train" in result.stdout
    assert ((out / "results.json").read_bytes(), sorted(out.rglob("*"))) == before  # nothing trained or logged


def test_changed_set_with_the_same_out_is_refused_before_training(finished: tuple[Path, Path, str]) -> None:
    config, out, _ = finished
    before = sorted(out.rglob("*"))
    status, stdout, stderr = suite("--config", str(config), "--set", "model.depth=2", "--out", str(out))
    assert status == 1 and stdout == ""
    (line,) = stderr.strip().splitlines()
    cell = CELLS["listops"]
    assert line.startswith(f"lra suite: {out / cell / 'cell.json'}: cell '{cell}' was run here with another config")
    assert "--out DIR" in line
    assert sorted(out.rglob("*")) == before


class StopAfter(Callback):
    """Stops training with an error once `step` optimiser steps are done (a crash part-way through a task)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        if trainer.global_step >= self.step:
            raise OSError("stopped part-way")


def test_a_task_stopped_part_way_continues_to_the_numbers_of_an_uninterrupted_run(
    finished: tuple[Path, Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, out = write_suite(tmp_path), tmp_path / "out"
    fit_task = lra.suite.cell.fit_task

    def crashing(*args: Any, callbacks: Any = (), **kwargs: Any) -> TaskRun:
        return fit_task(*args, **kwargs, callbacks=[*callbacks, StopAfter(3)])

    monkeypatch.setattr(lra.suite.cell, "fit_task", crashing)
    with pytest.raises(OSError, match="stopped part-way"):
        suite("--config", str(config), "--tasks", "pathfinder", "--out", str(out))
    key = CELLS["pathfinder"]
    record = results_of(out)["cells"][key]
    assert record["status"] == "failed" and record["error"] == "OSError: stopped part-way"
    assert results_of(out)["table"]["nala"]["tasks"]["pathfinder"]["n"] == 0
    assert "| **nala** | — | — | — | — | pending | — |" in (out / "results.md").read_text()
    assert (out / key / "checkpoints" / "last.ckpt").is_file()  # saved at the validation of step 2

    monkeypatch.setattr(lra.suite.cell, "fit_task", fit_task)
    status, stdout, stderr = suite("--config", str(config), "--tasks", "pathfinder", "--out", str(out))
    assert status == 0, stderr[-3000:]
    assert f"{key}: continuing from {out / key / 'checkpoints' / 'last.ckpt'}" in stdout
    record = results_of(out)["cells"][key]
    uninterrupted = results_of(finished[1])["cells"][key]
    assert record["status"] == "finished" and record["steps"] == uninterrupted["steps"] == 4
    assert (record["test_acc"], record["best_val_acc"]) == (uninterrupted["test_acc"], uninterrupted["best_val_acc"])
    curves, reference_curves = (scalars(folder / key) for folder in (out, finished[1]))
    for placeholders in (curves, reference_curves):  # Lightning's hp_metric: -1 at each start, not a result
        placeholders.pop("hp_metric", None)
    assert curves == reference_curves  # val/acc at steps 2 (the first run) and 4 (continued), each once
    weights, reference = (
        torch.load(folder / key / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
        for folder in (out, finished[1])
    )
    assert all(torch.equal(weights[name], tensor) for name, tensor in reference.items())


@pytest.mark.parametrize(
    ("change", "argv", "expected"),
    [
        ({"set": {"model.foo": 1}}, [], ["tiny.yaml: task 'listops'", "'model' does not accept option 'foo'"]),
        ({"tasks": ["listops", "pathfinder", "lisptops"]}, [], ["tiny.yaml: tasks: unknown task 'lisptops'"]),
        ({"tasks": ["listops"]}, [], ["tiny.yaml: task_set['pathfinder']: not one of the suite's tasks (listops)"]),
        ({"taks": ["listops"]}, [], ["tiny.yaml: unknown key(s) taks; expected some of tasks, set, task_set"]),
        ({"set": ["model.depth", 2]}, [], ["tiny.yaml: set: expected a mapping of dotted config keys"]),
        ({}, ["--set", "model.depth"], ["--set 'model.depth': expected KEY=VALUE"]),
        ({}, ["--set", "model.attention=nalla"], ["tiny.yaml: task 'listops'", "unknown attention ['nalla']"]),
        ({}, ["--tasks", "listops,listops"], ["--tasks 'listops,listops': task 'listops' appears more than once"]),
        ({"tasks": ["listops", "listops"]}, [], ["tiny.yaml: tasks: task 'listops' appears more than once"]),
        (
            {"encoders": {"nala": {}, "softmax": {"model.attention": "softmax", "model.atention_kwargs": {}}}},
            [],
            ["tiny.yaml: encoders['softmax'] (task 'listops')", "'model' does not accept option 'atention_kwargs'"],
        ),
        ({"encoders": {}}, [], ["tiny.yaml: encoders: expected a non-empty mapping of encoder names to overrides"]),
        (
            {"encoders": {"nala": {}}},
            ["--encoders", "nala,mamba"],
            ["--encoders 'nala,mamba': unknown encoder 'mamba'"],
        ),
        ({"seeds": []}, [], ["tiny.yaml: seeds: expected a non-empty list of integer seeds in [0, 2**32), got []"]),
        ({"seeds": [0, 0]}, [], ["tiny.yaml: seeds: seed 0 appears more than once"]),
        ({}, ["--seeds", ""], ["--seeds '': expected a comma-separated list of integer seeds"]),
        ({}, ["--jobs", "0"], ["--jobs must be a whole number >= 1 (jobs run at once), got 0"]),
        ({"budget": {"cell": "2 hours"}}, [], ["tiny.yaml: budget.cell: '2 hours' is not a duration of at least 1 s"]),
        ({}, ["--grid-budget", "soon"], ["--grid-budget: 'soon' is not a duration of at least 1 s; expected e.g. 90s"]),
    ],
)
def test_bad_input_is_one_line_before_any_training(
    tmp_path: Path, change: dict[str, Any], argv: list[str], expected: list[str]
) -> None:
    config, out = write_suite(tmp_path, **change), tmp_path / "out"
    status, stdout, stderr = suite("--config", str(config), "--out", str(out), *argv)
    assert status == 1 and stdout == ""
    (line,) = stderr.strip().splitlines()
    assert line.startswith("lra suite: ")
    assert all(part in line for part in expected), line
    assert not out.exists()


def test_duplicate_encoder_names_are_one_line_before_any_training(tmp_path: Path) -> None:
    config, out = (
        write_suite(tmp_path, encoders={"nala": {}, "softmax": {"model.attention": "softmax"}}),
        tmp_path / "o",
    )
    config.write_text(config.read_text().replace("softmax:\n", "nala:\n", 1))
    status, stdout, stderr = suite("--config", str(config), "--out", str(out))
    assert status == 1 and stdout == "" and not out.exists()
    (line,) = stderr.strip().splitlines()
    assert line.startswith(f"lra suite: {config}: encoders: encoder 'nala' appears more than once (line ")


def test_missing_data_stops_the_shipped_suite_before_any_training(tmp_path: Path) -> None:
    start = time.perf_counter()
    status, stdout, stderr = suite("--config", str(REPO / "sweeps/suites/lra.yaml"), "--out", str(tmp_path / "out"))
    assert status == 1 and stdout == ""
    assert stderr.startswith(
        f"lra suite: {REPO / 'sweeps/suites/lra.yaml'}: task 'text': Text (IMDB) data not found: data.root is not set"
    )
    assert "Traceback" not in stderr and not (tmp_path / "out").exists()
    assert time.perf_counter() - start < 20


def test_shipped_suite_is_the_five_lra_tasks_and_columns_come_from_the_data(tmp_path: Path) -> None:
    shipped = load_suite_config(REPO / "sweeps/suites/lra.yaml")
    assert shipped.tasks == AVERAGED_TASKS and shipped.set == {} and shipped.task_set == {}
    assert [task.column for task in suite_tasks(shipped, {})] == list(AVERAGED_TASKS)
    renamed = tmp_path / "best_listops.yaml"
    renamed.write_text((REPO / "tasks/listops.yaml").read_text())
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump({"tasks": [str(renamed), "pathfinder", "pathx"]}))
    mixed = load_suite_config(path)
    assert [task.column for task in suite_tasks(mixed, {})] == ["listops", "pathfinder", "pathx"]
    easier = suite_tasks(mixed, {"data.difficulty": 9})  # not the benchmark's level: beside the table
    assert [task.column for task in easier] == ["listops", None, None]


def test_default_out_is_named_after_the_suite_file_and_the_set_values() -> None:
    assert default_out(Path("sweeps/suites/lra.yaml"), {}) == Path("runs/suite/lra")
    softmax = default_out(Path("sweeps/suites/lra.yaml"), {"model.attention": "softmax"})
    assert softmax == Path(f"runs/suite/lra-{digest({'model.attention': 'softmax'})}")
    assert softmax != default_out(Path("sweeps/suites/lra.yaml"), {"model.attention": "linear"})


def test_markdown_of_a_full_suite_with_path_x(tmp_path: Path) -> None:
    path = tmp_path / "full.yaml"
    path.write_text(yaml.safe_dump({"tasks": [*AVERAGED_TASKS, "pathx"]}))
    cells = grid_cells(load_suite_config(path), {})
    for accuracy, cell in zip([0.4, 0.6, 0.8, 0.4, 0.7, 0.55], cells, strict=True):
        record_cell(tmp_path, cell, "finished", test_acc=accuracy)
    write_results(tmp_path, str(path), ["nala"])
    text = (tmp_path / "results.md").read_text()
    assert "| model | ListOps | Text | Retrieval | Image | Pathfinder | avg | Path-X |" in text
    assert "| **nala** | 40.00 (1) | 60.00 (1) | 80.00 (1) | 40.00 (1) | 70.00 (1) | 58.00 | 55.00 (1) |" in text
    assert "| NaLaFormer | — | — | — | — | — | 61.2 | — |" in text
    assert "Path-X: beside the table, not in the LRA average." in text and "covers" not in text
    average = results_of(tmp_path)["table"]["nala"]["average"]
    assert average["mean"] == pytest.approx(0.58) and average["complete"] is True
    assert average["over"] == list(AVERAGED_TASKS)
