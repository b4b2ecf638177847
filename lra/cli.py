"""The entry points: `lightning fit|validate|test|predict` and `lra` (those four, plus `data`, `suite`, `sweep`,
`bench`, `check`). Each command lives in its own module, imported only when it runs; logging is set up here, once."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from lra.dispatch import Command, dispatch
from lra.logs import show_harness_logs


def _lightning(help: str) -> Command:
    """A LightningCLI subcommand: LRACLI parses it, its name included."""
    return Command("lra.training.lightning_cli:run_command", help, keep_name=True)


COMMANDS = {
    "fit": _lightning("train a task config, then score the test split from the best-validation checkpoint"),
    "validate": _lightning("one pass over the validation split"),
    "test": _lightning("one pass over the test split"),
    "predict": _lightning("predictions over the predict split"),
    "data": Command("lra.data.commands:main", "generate ListOps / Pathfinder, build and verify token caches"),
    "suite": Command("lra.suite.command:main", "train the tasks of a suite file and report the LRA average"),
    "sweep": Command("lra.sweep.command:main", "run or continue an Optuna study described by a sweep file"),
    "bench": Command("lra.bench:main", "benchmarks that measure side by side in one run and print ratios"),
    "check": Command("lra.check:main", "checks before training: `lra check attention` runs the conformance kit"),
}


def lightning_main(args: Sequence[str] | None = None) -> int:
    """`lightning fit|validate|test|predict ...`: the LightningCLI of this harness (`args`: None reads sys.argv)."""
    show_harness_logs()
    from lra.training.lightning_cli import run_command

    return run_command(args)


def main(argv: Sequence[str] | None = None) -> int:
    """`lra COMMAND ...` (`argv`: None reads sys.argv); `lra --help` lists the commands."""
    show_harness_logs()
    return dispatch("lra", COMMANDS, sys.argv[1:] if argv is None else argv)
