"""`lra sweep` end to end on tiny ListOps: trials, pruning reports, user attributes, HParams, export, continuing."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from helpers.runs import scalars
from helpers.sweeps import TINY_BUDGET, TINY_LISTOPS, run_sweep, write_sweep
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from lra.training.run import check_config

STORAGE = "sqlite:///runs/sweeps/tiny.db"


def events(folder: Path) -> list[EventAccumulator]:
    accumulators = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(path))
        accumulator.Reload()
        accumulators.append(accumulator)
    return accumulators


def hparams(folder: Path) -> dict[str, object]:
    """The hyper-parameters TensorBoard's HParams view shows for the run in `folder`."""
    for accumulator in events(folder):
        for content in accumulator.PluginTagToContent("hparams").values():
            data = plugin_data_pb2.HParamsPluginData.FromString(content)
            if data.HasField("session_start_info"):
                start = data.session_start_info.hparams
                return {key: value.number_value or value.string_value for key, value in start.items()}
    return {}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, optuna.Study, str]:
    """A 3-trial sweep (median pruner) run to the end, then exported."""
    work = tmp_path_factory.mktemp("sweep")
    pruner = {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0}
    config = write_sweep(work, pruner=pruner)
    result = run_sweep(work, "--config", str(config), "--export-best", "best.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    return work, optuna.load_study(study_name="tiny", storage=f"sqlite:///{work}/runs/sweeps/tiny.db"), result.stderr


def test_the_requested_trials_finish_with_validation_accuracy(finished: tuple[Path, optuna.Study, str]) -> None:
    work, study, _ = finished
    trials = study.get_trials()
    assert [trial.number for trial in trials] == [0, 1, 2]
    assert all(trial.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for trial in trials)
    assert set(trials[0].params) == {"model.attention_kwargs.alpha", "model.attention_kwargs.beta", "model.depth"}
    for trial in trials:
        assert 1.0 <= trial.params["model.attention_kwargs.alpha"] <= 4.0
        assert trial.params["model.depth"] in (1, 2)
        assert Path(trial.user_attrs["tensorboard"]) == Path("runs/sweeps/tiny") / f"trial_{trial.number:04d}"
        log_dir = work / trial.user_attrs["tensorboard/listops"]
        assert log_dir.is_dir()
        logged = scalars(log_dir)
        assert "test/acc" not in logged and "test/loss" not in logged, "a trial must never score the test split"
        # Pruning reports come at the global step of each validation (3, 6), not at the repeated epoch 0.
        assert set(trial.intermediate_values) <= {3, 6} and 3 in trial.intermediate_values
        assert trial.intermediate_values[3] == pytest.approx(logged["val/acc_best"][0])
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert trial.value == pytest.approx(trial.user_attrs["val_acc/listops"])
            assert trial.value == pytest.approx(max(logged["val/acc"]))
            assert trial.intermediate_values[6] == pytest.approx(trial.value)


def test_every_trial_is_in_tensorboards_hparams_view(finished: tuple[Path, optuna.Study, str]) -> None:
    work, study, _ = finished
    for trial in study.get_trials():
        folder = work / trial.user_attrs["tensorboard"]
        shown = hparams(folder)
        assert shown["model.attention_kwargs.alpha"] == pytest.approx(trial.params["model.attention_kwargs.alpha"])
        assert shown["model.depth"] == trial.params["model.depth"]
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert scalars(folder)["hparams/objective"] == [pytest.approx(trial.value)]
            assert scalars(folder)["hparams/val_acc/listops"] == [pytest.approx(trial.value)]
        else:
            assert scalars(folder)["hparams/pruned_at_step"] == [max(trial.intermediate_values)]


def test_export_best_writes_a_ready_task_config(finished: tuple[Path, optuna.Study, str]) -> None:
    work, study, _ = finished
    text = (work / "best.yaml").read_text()
    assert f"trial {study.best_trial.number}" in text
    config = yaml.safe_load(text)
    best = study.best_trial.params
    assert config["model"]["attention_kwargs"]["alpha"] == best["model.attention_kwargs.alpha"]
    assert config["model"]["attention_kwargs"]["beta"] == best["model.attention_kwargs.beta"]
    assert config["model"]["depth"] == best["model.depth"]
    assert config["data"]["init_args"]["num_train"] == 64  # the sweep's `set` is kept ...
    assert config["trainer"]["max_steps"] == 50000  # ... its per-trial budget (`trial_set`) is not
    check_config(config, "best.yaml")


def test_rerunning_continues_the_study(finished: tuple[Path, optuna.Study, str]) -> None:
    work, study, _ = finished
    before = {trial.number: trial.params for trial in study.get_trials()}
    again = run_sweep(work, "--config", "tiny.yaml")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "3 finished trials, 3 requested: done" in again.stderr
    more = run_sweep(work, "--config", "tiny.yaml", "--n-trials", "4")
    assert more.returncode == 0, more.stderr[-3000:]
    trials = optuna.load_study(study_name="tiny", storage=f"sqlite:///{work}/runs/sweeps/tiny.db").get_trials()
    assert [trial.number for trial in trials] == [0, 1, 2, 3]
    assert {trial.number: trial.params for trial in trials[:3]} == before
    assert trials[3].params not in before.values(), "a continued study must not redraw the points it has tried"


def test_a_suite_objective_averages_tasks_and_reports_after_each(tmp_path: Path) -> None:
    model = {key: value for key, value in TINY_LISTOPS.items() if key.startswith("model.")}
    listops = {key: value for key, value in TINY_LISTOPS.items() if key.startswith("data.")}
    pathfinder = {"data.num_images": 64, "data.resolution": 32, "data.difficulty": 6, "data.batch_size": 16}
    config = write_sweep(
        tmp_path,
        tasks=["listops", "pathfinder"],
        objective="average",
        n_trials=1,
        set=model,
        task_set={"listops": listops, "pathfinder": pathfinder},
        search_space={"model.attention_kwargs.alpha": {"type": "float", "low": 1.0, "high": 4.0}},
        trial_set={**TINY_BUDGET, "trainer.max_steps": 4, "trainer.val_check_interval": 3},
    )
    result = run_sweep(tmp_path, "--config", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    (trial,) = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path}/runs/sweeps/tiny.db").get_trials()
    listops_acc, pathfinder_acc = trial.user_attrs["val_acc/listops"], trial.user_attrs["val_acc/pathfinder"]
    assert trial.value == pytest.approx((listops_acc + pathfinder_acc) / 2)
    # Each task validates once, at its step 3 (offsets 0 and 4), reporting the running mean over the tasks so
    # far; after the first task, at its end (step 4), the mean of the finished tasks is reported as well.
    assert sorted(trial.intermediate_values) == [3, 4, 7]
    assert trial.intermediate_values[3] == trial.intermediate_values[4] == pytest.approx(listops_acc)
    assert trial.intermediate_values[7] == pytest.approx(trial.value)
