"""`lra suite --jobs 2` through the console script: a grid of 2 encoders × 2 seeds on tiny ListOps, its cells run
as child processes two at a time; the results, TensorBoard table and pictures agree with the cells' event files."""

from __future__ import annotations

import statistics
import subprocess
from pathlib import Path

import pytest
from helpers.runs import scalars
from helpers.suites import BIN, results_of, suite_env, write_grid
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from lra.jobs import cpu_cores
from lra.plots import PALETTE

KEYS = [f"listops/{encoder}/seed{seed}" for seed in (0, 1) for encoder in ("nala", "softmax")]


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The finished grid's folder and the command's output."""
    work = tmp_path_factory.mktemp("grid")
    config, out = write_grid(work), work / "out"
    result = subprocess.run(
        [str(BIN / "lra"), "suite", "--config", str(config), "--out", str(out), "--jobs", "2"],
        cwd=work,
        env=suite_env(work / "cache"),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, result.stdout


def test_every_cell_ran_in_its_own_process_with_its_share_of_the_cores(grid: tuple[Path, str]) -> None:
    out, stdout = grid
    cells = results_of(out)["cells"]
    assert sorted(cells) == sorted(KEYS)
    for key, record in cells.items():
        assert record["status"] == "finished" and record["steps"] == 4
        assert record["threads"] == max(1, cpu_cores() // 2)  # torch's threads inside the child
        assert f"Seed set to {record['seed']}" in (out / key / "cell.log").read_text()  # the child's own output
        assert f"{key}: training in {out / key} (CPU, {record['threads']} thread" in stdout
    lines = stdout.splitlines()
    assert [line for line in lines if "test acc" in line][-1].startswith("lra suite: [4/4] ")  # the overall count
    assert "\r" not in stdout  # no progress bars redrawn into a pipe


def test_results_equal_the_cells_event_files(grid: tuple[Path, str]) -> None:
    out, _ = grid
    results = results_of(out)
    logged = {key: scalars(out / key) for key in KEYS}
    for key in KEYS:
        record = results["cells"][key]
        assert logged[key]["test/acc"] == pytest.approx([record["test_acc"]])
        assert max(logged[key]["val/acc"]) == pytest.approx(record["best_val_acc"])
    for encoder in ("nala", "softmax"):
        accuracies = [logged[f"listops/{encoder}/seed{seed}"]["test/acc"][0] for seed in (0, 1)]
        entry = results["table"][encoder]["tasks"]["listops"]
        assert (entry["n"], entry["seeds"]) == (2, [0, 1])
        assert entry["mean"] == pytest.approx(statistics.fmean(accuracies))
        assert entry["std"] == pytest.approx(statistics.stdev(accuracies))
        row = f"| **{encoder}** | {100 * entry['mean']:.2f} ± {100 * entry['std']:.2f} (2) | — | — | — | — |"
        assert row in (out / "results.md").read_text()


def test_the_table_is_in_tensorboard_with_each_encoders_settings(grid: tuple[Path, str]) -> None:
    out, _ = grid
    table = results_of(out)["table"]
    for encoder in ("nala", "softmax"):
        logged = scalars(out / "suite" / encoder)
        entry = table[encoder]["tasks"]["listops"]
        assert logged["lra/listops"][-1] == pytest.approx(entry["mean"])
        assert logged["lra/listops/std"] == pytest.approx([entry["std"]])  # once two seeds had finished
        assert logged["lra/average"][-1] == pytest.approx(table[encoder]["average"]["mean"])
        (events,) = (out / "suite" / encoder).glob("events.out.tfevents.*")
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        content = accumulator.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
        assert hparams["encoder"].string_value == encoder and hparams["seeds"].string_value == "0,1"
        assert hparams["attention"].string_value.startswith(encoder)
        assert hparams["model.dim"].number_value == 16


def colours_in(path: Path) -> set[tuple[int, int, int]]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
    with Image.open(path) as image:
        return {colour for _, colour in image.convert("RGB").getcolors(maxcolors=1 << 20)}


def test_the_pictures_are_pngs_with_a_series_per_encoder(grid: tuple[Path, str]) -> None:
    out, stdout = grid
    for name in ("table.png", "curves.png"):
        path = out / "figures" / name
        assert f"drew {path}" in stdout
        colours = colours_in(path)
        assert {PALETTE[0], PALETTE[1]} <= colours and PALETTE[2] not in colours  # nala, softmax; nothing else
    with Image.open(out / "figures" / "curves.png") as image:
        assert image.size == (500, 420)  # one panel: ListOps
