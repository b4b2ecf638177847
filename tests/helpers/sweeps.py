"""Tiny sweep files over tiny generated ListOps, and the real `lra sweep` command run in a subprocess."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from helpers.runs import BIN

TINY_LISTOPS = {
    "data.num_train": 64,
    "data.num_val": 32,
    "data.num_test": 32,
    "data.spec.max_depth": 2,
    "data.spec.min_length": 5,
    "data.spec.max_length": 24,
    "data.max_length": 32,
    "data.batch_size": 16,
    "data.eval_batches": 2,
    "model.dim": 16,
    "model.ffn_dim": 32,
    "model.warmup_steps": 2,  # OneCycleLR cannot warm up over one step (it divides by zero)
}
TINY_BUDGET = {
    "trainer.max_steps": 6,
    "trainer.val_check_interval": 3,
    "trainer.log_every_n_steps": 3,
    "trainer.enable_progress_bar": False,
    "trainer.enable_model_summary": False,
}


def tiny_sweep(**changes: Any) -> dict[str, Any]:
    """A sweep over NaLa's α, β and the depth on tiny ListOps; `changes` replace top-level keys."""
    sweep = {
        "study_name": "tiny",
        "tasks": ["listops"],
        "objective": "listops",
        "n_trials": 3,
        "set": dict(TINY_LISTOPS),
        "trial_set": dict(TINY_BUDGET),
        "search_space": {
            "model.attention_kwargs.alpha": {"type": "float", "low": 1.0, "high": 4.0},
            "model.attention_kwargs.beta": {"type": "float", "low": 0.1, "high": 1.0, "log": True},
            "model.depth": {"type": "int", "low": 1, "high": 2},
        },
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
        "heartbeat": {"interval": 1, "grace_period": 3, "max_retry": 1},
    }
    sweep.update(changes)
    return sweep


def write_sweep(folder: Path, name: str = "tiny.yaml", **changes: Any) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(tiny_sweep(**changes), sort_keys=False))
    return path


def sweep_env(work: Path) -> dict[str, str]:
    """The environment of a `lra sweep` run in `work`, with the data cache shared by the session's tests."""
    return {**os.environ, "LRA_CACHE_DIR": str(work.parent / "shared-cache"), "PYTHONUNBUFFERED": "1"}


def run_sweep(work: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`lra sweep ARGS` in `work` (a subprocess through the installed console script)."""
    return subprocess.run(
        [str(BIN / "lra"), "sweep", *args],
        cwd=work,
        env=sweep_env(work),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
