"""Running the real commands as a user does, and reading back what they logged: shared by the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # this environment's console scripts: lightning, lra
# `lightning fit --config tasks/listops.yaml` on tiny generated ListOps: 16 steps, validated every 4, in seconds.
TINY_FIT = [
    "--trainer.max_steps", "16",
    "--trainer.val_check_interval", "4",
    "--trainer.enable_progress_bar", "false",
    "--trainer.log_every_n_steps", "2",
    "--data.num_train", "192", "--data.num_val", "40", "--data.num_test", "64",
    "--data.spec.max_depth", "4", "--data.spec.min_length", "5", "--data.spec.max_length", "60",
    "--data.max_length", "64",
    "--data.batch_size", "16",
    "--data.eval_batches", "4",
    "--data.num_workers", "0",
    "--model.lr", "0.01", "--model.warmup_steps", "2",  # a large step: accuracy moves between validations
]  # fmt: skip
TINY_FIT_VALIDATED_AT = [4, 8, 12, 16]


def run_command(command: str, *args: str, cwd: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    """`command ARGS` in `cwd` with its data cache in `cache`: a console script of this environment, or
    `python -m lra` for command "-m lra"."""
    env = {**os.environ, "LRA_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1"}
    program = [sys.executable, "-m", "lra"] if command == "-m lra" else [str(BIN / command)]
    return subprocess.run([*program, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def scalars(log_dir: Path) -> dict[str, list[float]]:
    """Every scalar of one run folder as TensorBoard shows it: tensorboard's reader over all its event files in
    order (a resumed run's purge of the events it logs again included)."""
    accumulator = EventAccumulator(str(log_dir))
    accumulator.Reload()
    return {tag: [event.value for event in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def start_in_background(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`argv` in the background in `cwd`, its output appended to `log`; it leads its own process group, so killing
    the group takes everything it started too, as a machine's death would."""
    with open(log, "ab") as output:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
