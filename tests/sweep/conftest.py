"""Fixtures of the sweep tests; the sweep-file writers live in helpers.sweeps."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.sweeps import BIN, TINY_BUDGET, TINY_LISTOPS, run_sweep, sweep_env, tiny_sweep, write_sweep

__all__ = ["BIN", "TINY_BUDGET", "TINY_LISTOPS", "run_sweep", "sweep_env", "tiny_sweep", "work", "write_sweep"]


@pytest.fixture
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh working folder whose siblings share one data cache across the sweep tests."""
    return tmp_path_factory.mktemp("sweep")
