"""`lra suite` end to end on tiny generated ListOps and a tiny official-layout Pathfinder folder (in-process, and once
through the real console script), plus its results table and its errors, which come before any training."""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightning.pytorch.callbacks import Callback
from lra_fixtures.pathfinder import write_pathfinder
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from test_cli import scalars

import lra.suite.command
from lra.data.tasks import AVERAGED_TASKS
from lra.overrides import digest
from lra.suite.command import default_out, main
from lra.suite.config import load_suite_config, suite_tasks
from lra.suite.report import SuiteResults
from lra.training.run import TaskRun

REPO = Path(__file__).resolve().parents[1]
LRA = Path(sys.executable).parent / "lra"
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
}
LISTOPS = {
    "data.num_train": 96, "data.num_val": 40, "data.num_test": 40,
    "data.spec.max_depth": 4, "data.spec.min_length": 5, "data.spec.max_length": 60,
    "data.max_length": 64, "data.batch_size": 16,
}  # fmt: skip


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


def suite(*argv: str) -> tuple[int, str, str]:
    """lra.suite.command.main(argv) in this process: exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A finished two-task suite: (suite file, its folder, stdout)."""
    folder = tmp_path_factory.mktemp("suite")
    config, out = write_suite(folder), folder / "out"
    status, stdout, stderr = suite("--config", str(config), "--out", str(out))
    assert status == 0, stderr[-3000:]
    return config, out, stdout


def results_of(out: Path) -> dict[str, Any]:
    return json.loads((out / "results.json").read_text())


def test_results_json_holds_each_tasks_logged_test_accuracy(finished: tuple[Path, Path, str]) -> None:
    config, out, stdout = finished
    results = results_of(out)
    assert list(results["tasks"]) == ["listops", "pathfinder"] and results["started"] == {}
    for name, record in results["tasks"].items():
        assert 0.0 <= record["test_acc"] <= 1.0 and 0.0 <= record["best_val_acc"] <= 1.0
        assert record["steps"] == 4 and record["column"] == name and record["log_dir"] == str(out / name)
        logged = scalars(out / name)
        assert logged["test/acc"] == pytest.approx([record["test_acc"]])
        assert max(logged["val/acc"]) == pytest.approx(record["best_val_acc"])
        assert Path(record["best_checkpoint"]).is_file()
        assert record["overrides"]["model.dim"] == 16 and record["attention"].startswith("nala")
    merged = {task.name: task for task in suite_tasks(load_suite_config(config), {})}
    assert {name: record["config_digest"] for name, record in results["tasks"].items()} == {
        name: digest(task.config) for name, task in merged.items()
    }
    accuracies = [results["tasks"][name]["test_acc"] for name in ("listops", "pathfinder")]
    assert results["average"] == pytest.approx(statistics.fmean(accuracies))
    assert results["average_over"] == ["listops", "pathfinder"] and results["average_complete"] is False
    assert f"lra suite: pathfinder: test acc {100 * accuracies[1]:.2f}%" in stdout


def test_suite_run_logs_each_task_and_the_average_with_its_settings(finished: tuple[Path, Path, str]) -> None:
    _, out, _ = finished
    results = results_of(out)
    logged = scalars(out / "suite")
    assert logged["lra/listops"] == pytest.approx([results["tasks"]["listops"]["test_acc"]])
    assert logged["lra/pathfinder"] == pytest.approx([results["tasks"]["pathfinder"]["test_acc"]])
    assert logged["lra/average"] == pytest.approx([statistics.fmean(logged["lra/listops"] + logged["lra/pathfinder"])])
    (events,) = (out / "suite").glob("events.out.tfevents.*")
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
    listops, pathfinder = (100 * results["tasks"][name]["test_acc"] for name in ("listops", "pathfinder"))
    ours = f"| **this run** | {listops:.2f} | — | — | — | {pathfinder:.2f} | {100 * results['average']:.2f}\\* |"
    assert ours in text
    assert "| model | ListOps | Text | Retrieval | Image | Pathfinder | avg |" in text
    assert "| Transformer (softmax) | 38.71 | 61.55 | 80.93 | 39.14 | 70.39 | 58.14 |" in text
    assert "| NaLaFormer | — | — | — | — | — | 61.2 |" in text
    assert "covers 2 of the 5 LRA tasks (ListOps, Pathfinder)" in text
    assert "attention `nala {alpha: 3.0, beta: 0.5}`" in text and "`model.dim=16`" in text
    assert "pathfinder only: " in text and "`data.batch_size=8`" in text


def test_rerun_through_the_console_script_skips_finished_tasks(finished: tuple[Path, Path, str]) -> None:
    config, out, _ = finished
    before = (out / "results.json").read_bytes(), sorted(out.rglob("*"))
    result = subprocess.run(
        [str(LRA), "suite", "--config", str(config), "--out", str(out)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "lra suite: listops: already done" in result.stdout and "lra suite: pathfinder: already done" in result.stdout
    )
    assert "skipped" in result.stdout
    assert ((out / "results.json").read_bytes(), sorted(out.rglob("*"))) == before  # nothing trained or logged


def test_changed_set_with_the_same_out_is_refused_before_training(finished: tuple[Path, Path, str]) -> None:
    config, out, _ = finished
    before = sorted(out.rglob("*"))
    status, stdout, stderr = suite("--config", str(config), "--set", "model.depth=2", "--out", str(out))
    assert status == 1 and stdout == ""
    (line,) = stderr.strip().splitlines()
    assert line.startswith(f"lra suite: {out / 'results.json'}: task 'listops' was run here with another config")
    assert "--out DIR" in line
    assert sorted(out.rglob("*")) == before


class StopAfter(Callback):
    """Stops training with an error once `step` optimiser steps are done (a crash part-way through a task)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        if trainer.global_step >= self.step:
            raise OSError("stopped part-way")


def test_a_task_stopped_part_way_continues_from_its_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, out = write_suite(tmp_path), tmp_path / "out"
    fit_task = lra.suite.command.fit_task

    def crashing(*args: Any, **kwargs: Any) -> TaskRun:
        return fit_task(*args, **kwargs, callbacks=[StopAfter(3)])

    monkeypatch.setattr(lra.suite.command, "fit_task", crashing)
    with pytest.raises(OSError, match="stopped part-way"):
        suite("--config", str(config), "--tasks", "pathfinder", "--out", str(out))
    assert set(results_of(out)["started"]) == {"pathfinder"} and results_of(out)["tasks"] == {}
    assert (out / "pathfinder" / "checkpoints" / "last.ckpt").is_file()  # saved at the validation of step 2

    monkeypatch.setattr(lra.suite.command, "fit_task", fit_task)
    status, stdout, stderr = suite("--config", str(config), "--tasks", "pathfinder", "--out", str(out))
    assert status == 0, stderr[-3000:]
    assert f"pathfinder: continuing from {out / 'pathfinder' / 'checkpoints' / 'last.ckpt'}" in stdout
    record = results_of(out)["tasks"]["pathfinder"]
    assert record["steps"] == 4 and 0.0 <= record["test_acc"] <= 1.0
    assert len(scalars(out / "pathfinder")["val/acc"]) == 2  # steps 2 (first run) and 4 (continued), not again
    assert results_of(out)["started"] == {}


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
    tasks = suite_tasks(load_suite_config(path), {})
    results = SuiteResults(tmp_path, str(path))
    for accuracy, task in zip([0.4, 0.6, 0.8, 0.4, 0.7, 0.55], tasks, strict=True):
        results.finish(task, TaskRun(task.name, accuracy, accuracy, "best.ckpt", task.name, 10, 1.0))
    results.save(tasks)
    text = (tmp_path / "results.md").read_text()
    assert "| model | ListOps | Text | Retrieval | Image | Pathfinder | avg | Path-X |" in text
    assert "| **this run** | 40.00 | 60.00 | 80.00 | 40.00 | 70.00 | 58.00 | 55.00 |" in text
    assert "| NaLaFormer | — | — | — | — | — | 61.2 | — |" in text
    assert "Path-X: beside the table, not in the LRA average." in text and "covers" not in text
    recorded = results_of(tmp_path)
    assert recorded["average"] == pytest.approx(0.58) and recorded["average_complete"] is True
    assert recorded["average_over"] == list(AVERAGED_TASKS)
