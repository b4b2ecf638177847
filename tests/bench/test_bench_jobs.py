"""`lra bench jobs`: the grid it times is a valid suite of 2 encoders × seeds tiny ListOps cells."""

from __future__ import annotations

from pathlib import Path

from lra.bench.jobs import suite_file
from lra.suite.config import load_suite_config
from lra.suite.grid import grid_cells
from lra.training.run import check_config


def test_the_timed_grid_is_a_suite_of_tiny_listops_cells(tmp_path: Path) -> None:
    cells = grid_cells(load_suite_config(suite_file(tmp_path, 3, 40, {"model.depth": 1})), {})
    assert [cell.key for cell in cells[:2]] == ["listops/nala/seed0", "listops/softmax/seed0"] and len(cells) == 6
    config = cells[1].config
    assert config["trainer"]["max_steps"] == 40 and config["trainer"]["val_check_interval"] == 20
    assert config["model"]["depth"] == 1 and config["model"]["dim"] == 64  # the protocol model, but for --set
    for cell in cells[:2]:
        check_config(cell.config, cell.key)
