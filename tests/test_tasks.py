"""Every task config in tasks/: loads, agrees with `lra data` settings, and trains end to end on fixture data."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from helpers.image import write_cifar
from helpers.pathfinder import write_pathfinder
from helpers.retrieval import write_aan
from helpers.text import write_imdb
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lra.data.tasks import TASKS
from lra.training.lightning_cli import LRACLI

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CONFIGS = sorted(path.stem for path in (REPO / "tasks").glob("*.yaml"))
FIXTURES: dict[str, Callable[[Path], Path]] = {
    "text": write_imdb,
    "retrieval": write_aan,
    "image": write_cifar,
    "pathfinder": write_pathfinder,
    "pathx": lambda root: write_pathfinder(root, resolution=128, n=20),
}
SAYS = {
    "text": "validation: the IMDB test split (official LRA practice",
    "retrieval": "validation: the eval split",
    "image": "val = the last 10% of the training batches",
    "pathfinder": "Pathfinder 32×32 curv_contour_length_14 (official",
    "pathx": "Path-X 128×128 curv_contour_length_14 (official",
}
STEPS = [
    "--trainer.max_steps", "4",
    "--trainer.val_check_interval", "2",
    "--trainer.enable_progress_bar", "false",
    "--trainer.log_every_n_steps", "1",
    "--data.batch_size", "4",
    "--data.num_workers", "0",
    "--data.eval_batches", "2",
]  # fmt: skip


def data_section(task: str) -> tuple[str, dict]:
    config = yaml.safe_load((REPO / "tasks" / f"{task}.yaml").read_text())
    return config["data"]["class_path"], config["data"]["init_args"]


def test_every_task_has_a_config_and_every_config_a_task() -> None:
    assert set(CONFIGS) == set(TASKS)


@pytest.mark.parametrize("task", CONFIGS)
def test_config_settings_are_what_lra_data_uses(task: str) -> None:
    """tasks/<task>.yaml's data settings equal TASKS[task] over the class defaults: one cache for both."""
    class_path, init_args = data_section(task)
    datamodule, settings = TASKS[task]
    assert class_path == f"lra.data.{datamodule.__name__}"
    defaults = {name: p.default for name, p in inspect.signature(datamodule).parameters.items()}
    assert set(init_args) <= set(defaults)
    assert {name: {**defaults, **settings}[name] for name in init_args} == init_args


@pytest.mark.parametrize("task", CONFIGS)
def test_config_loads_and_instantiates(task: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["lightning"])  # the CLI reads only `args`
    root = ["--data.root", str(FIXTURES[task](tmp_path / "data"))] if task in FIXTURES else []
    cli = LRACLI(args=["--config", str(REPO / "tasks" / f"{task}.yaml"), *root, "--trainer.logger", "false"], run=False)
    _, init_args = data_section(task)
    assert type(cli.datamodule).__name__ == data_section(task)[0].rsplit(".", 1)[1]
    assert cli.datamodule.batch_size == init_args["batch_size"]
    assert cli.model.hparams.max_length == cli.datamodule.max_length
    assert cli.model.hparams.two_tower == (task == "retrieval")


def events(run_dir: Path) -> set[str]:
    tags: set[str] = set()
    for path in run_dir.glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(path))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    return tags


@pytest.mark.parametrize("task", sorted(FIXTURES))
def test_task_trains_end_to_end_through_the_cli(task: str, tmp_path: Path) -> None:
    root = FIXTURES[task](tmp_path / "data")
    env = {**os.environ, "LRA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    command = [str(BIN / "lightning"), "fit", "--config", str(REPO / "tasks" / f"{task}.yaml"), "--data.root"]
    result = subprocess.run(
        [*command, str(root), *STEPS], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "building the token cache" in result.stderr
    assert SAYS[task] in result.stderr  # the run says which data and validation split it used
    run_dir = tmp_path / "runs" / task / "version_0"
    assert len(list((run_dir / "checkpoints").glob("best-*.ckpt"))) == 1
    assert {"train/loss", "val/acc", "test/acc"} <= events(run_dir)
