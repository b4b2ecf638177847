"""Bad sweep input fails before anything trains, with a one-line message naming the file, key and value."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from helpers.image import write_cifar
from helpers.retrieval import write_aan
from helpers.sweeps import write_sweep
from helpers.text import write_imdb

from lra.overrides import ConfigError
from lra.sweep.command import main as sweep_main
from lra.sweep.config import load_sweep_config
from lra.sweep.objective import SweepObjective
from lra.sweep.study import build_pruner, build_sampler

REPO = Path(__file__).resolve().parents[2]


def fails(work: Path, capsys: pytest.CaptureFixture[str], *args: str, **changes: Any) -> str:
    """Run `lra sweep` in-process on a tiny sweep with `changes`; it must exit 1 before training. Its message."""
    path = write_sweep(work, **changes)
    assert sweep_main(["--config", str(path), *args]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("lra sweep: ") and "Traceback" not in err
    assert not (work / "runs").exists(), "nothing may be trained or stored"
    return err


@pytest.fixture(autouse=True)
def in_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("space", "says"),
    [
        ({"model.foo": {"type": "int", "low": 1, "high": 2}}, ["search_space['model.foo']", "foo"]),
        (
            {"model.attention_kwargs.gamma": {"type": "float", "low": 0.1, "high": 1.0}},
            ["search_space['model.attention_kwargs.gamma']", "gamma", "not accepted"],
        ),
        ({"model.depth": {"type": "int", "low": 4, "high": 2}}, ["search_space['model.depth']", "low (4)", "high (2)"]),
        ({"model.depth": {"type": "integer", "low": 1, "high": 2}}, ["search_space['model.depth']", "'integer'"]),
        ({"model.depth": {"type": "int", "low": 1, "hi": 2}}, ["search_space['model.depth']", "hi"]),
        ({"model.dropout": {"type": "float", "low": 0.0, "high": 0.5, "log": True}}, ["log: true needs low > 0"]),
        ({"model.attention": {"type": "categorical", "choices": []}}, ["choices must not be empty"]),
        ({"model.attention": {"type": "categorical", "choices": ["nala", "nope"]}}, ["= 'nope'", "unknown attention"]),
    ],
    ids=["unknown-key", "unknown-kwarg", "low>high", "bad-type", "bad-field", "log-low0", "no-choices", "bad-choice"],
)
def test_bad_search_space(tmp_path: Path, capsys: pytest.CaptureFixture[str], space: dict, says: list[str]) -> None:
    err = fails(tmp_path, capsys, search_space=space)
    assert "tiny.yaml" in err
    for part in says:
        assert part in err


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"sampler": {"name": "annealing"}}, ["sampler.name", "'annealing'", "tpe"]),
        ({"pruner": {"name": "sometimes"}}, ["pruner.name", "'sometimes'", "median", "hyperband", "none"]),
        ({"pruner": {"name": "median", "patience": 3}}, ["pruner 'median'", "patience"]),
        ({"sampler": {"name": "tpe", "seed": 0, "n_startup": 3}}, ["sampler 'tpe'", "n_startup"]),
        ({"objective": "text"}, ["objective", "'text'"]),
        ({"tasks": ["listops", "nosuchtask"]}, ["nosuchtask"]),
        ({"tasks": ["listops", "listops"]}, ["tiny.yaml: tasks: task 'listops' appears more than once"]),
        ({"tasks": ["listops", str(REPO / "tasks/listops.yaml")]}, ["tasks: task 'listops' appears more than once"]),
        ({"tasks": []}, ["tasks: expected a non-empty list of task names or config paths"]),
        ({"set": {"data.num_train": "many"}}, ["set / trial_set", "num_train"]),
        ({"direction": "up"}, ["direction", "'up'"]),
        ({"n_trials": 0}, ["n_trials must be >= 1"]),
        ({"searchspace": {}}, ["unknown key(s) searchspace"]),
        ({"task_set": {"text": {"data.root": "x"}}}, ["task_set['text']", "not one of the tasks"]),
        ({"heartbeat": {"interval": 1, "grace": 3}}, ["heartbeat", "grace"]),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else None,
)
def test_bad_study_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str], changes: dict, says: list[str]) -> None:
    err = fails(tmp_path, capsys, **changes)
    for part in says:
        assert part in err


def test_unreachable_storage_is_reported_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = fails(tmp_path, capsys, "--storage", "postgresql://nobody:secret@127.0.0.1:1/lra")
    assert "storage 'postgresql://nobody:***@127.0.0.1:1/lra' cannot be used" in err  # the password is not shown
    assert "secret" not in err
    assert "127.0.0.1" in err.split("cannot be used: ", 1)[1]  # the driver really tried to connect


def test_a_missing_database_driver_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = fails(tmp_path, capsys, "--storage", "postgresql+pg8000://nobody@127.0.0.1:1/lra")
    assert "needs the database driver 'pg8000'" in err


def test_bad_command_line_set_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = fails(tmp_path, capsys, "--set", "model.depth")
    assert "--set 'model.depth': expected KEY=VALUE" in err


def test_a_good_file_parses_to_what_it_says(tmp_path: Path) -> None:
    config = load_sweep_config(write_sweep(tmp_path))
    assert config.study_name == "tiny" and config.task_names == ("listops",) and config.n_trials == 3
    assert config.storage_url == "sqlite:///runs/sweeps/tiny.db"
    assert config.out_dir == Path("runs/sweeps/tiny")
    depth = next(param for param in config.search_space if param.key == "model.depth")
    assert (depth.type, depth.low, depth.high, depth.extremes()) == ("int", 1, 2, (1, 2))
    beta = next(param for param in config.search_space if param.key == "model.attention_kwargs.beta")
    assert beta.log and beta.extremes() == (0.1, 1.0)


def test_a_sweep_needs_tasks_or_a_suite(tmp_path: Path) -> None:
    path = write_sweep(tmp_path)
    text = path.read_text().replace("tasks:\n- listops\n", "")
    path.write_text(text)
    with pytest.raises(ConfigError, match="exactly one of `tasks:`"):
        load_sweep_config(path)


@pytest.mark.parametrize("name", ["smoke", "nala_listops"])
def test_shipped_sweeps_are_checked_clean(name: str) -> None:
    config = load_sweep_config(REPO / "sweeps" / f"{name}.yaml")
    assert {param.key for param in config.search_space} >= {"model.attention_kwargs.alpha", "model.depth"}
    build_sampler(config, None), build_pruner(config)
    SweepObjective(config, {}).check()


def test_the_suite_sweep_checks_every_tasks_data_before_training(tmp_path: Path) -> None:
    config = load_sweep_config(REPO / "sweeps" / "nala_lra.yaml")
    assert config.objective == "average"
    assert config.task_names == ("listops", "text", "retrieval", "image", "pathfinder")
    build_sampler(config, None), build_pruner(config)
    with pytest.raises(ConfigError, match=r"\(text\): Text \(IMDB\) data not found: data.root is not set"):
        SweepObjective(config, {}).check()
    roots = {
        "text": write_imdb(tmp_path / "imdb"),
        "retrieval": write_aan(tmp_path / "aan"),
        "image": write_cifar(tmp_path / "cifar"),
    }
    with_data = replace(config, task_set={task: {"data.root": str(root)} for task, root in roots.items()})
    SweepObjective(with_data, {}).check()
