"""One cell of a suite's grid, trained from its record: OUT/<task>/<encoder>/seed<N>/cell.json.

The runner writes the record (status `running`, the config, the budget) and calls `run_cell` in-process, or starts
`python -m lra.suite.cell FOLDER` as a child process; either way the record ends `finished` (test accuracy scored
from the best-validation checkpoint), `cut short` (a time budget stopped it: the step reached, never a test score)
or `failed`. progress.json beside it says how far training is, for the runner's display.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback, Timer

from lra.files import write_atomically
from lra.jobs import follow_parent
from lra.logs import show_harness_logs
from lra.overrides import ConfigError
from lra.training.checkpoint import SelectionCheckpoint, validation_follows
from lra.training.run import fit_task

RECORD = "cell.json"
PROGRESS = "progress.json"
LAST = Path("checkpoints") / "last.ckpt"


def now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def read_record(folder: Path) -> dict[str, Any] | None:
    """The cell's record, None when it has none yet."""
    path = folder / RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except ValueError as error:
        raise ConfigError(f"{path}: not a cell record ({error}); delete {folder} to retrain the cell") from error
    if not isinstance(record, dict) or "status" not in record:
        raise ConfigError(f"{path}: not a cell record (no status); delete {folder} to retrain the cell")
    return record


def write_record(folder: Path, record: dict[str, Any]) -> None:
    write_atomically(folder / RECORD, json.dumps(record, indent=2) + "\n")


def read_progress(folder: Path) -> dict[str, Any]:
    """How far a running cell is ({} before its first report)."""
    try:
        return json.loads((folder / PROGRESS).read_text())
    except (OSError, ValueError):
        return {}


class BudgetSpent(RuntimeError):
    """A time budget (the cell's trainer.max_time or the grid's deadline) ran out; last.ckpt holds the step reached."""


class CellTimer(Timer):
    """Lightning's Timer for the cell's trainer.max_time (the training time, counted across re-runs through the
    checkpoints) that never stops training itself: CellProgress stops the cell at a point where resuming is exact.
    Given as a callback, it takes the place of the Timer Lightning would make from trainer.max_time."""

    def on_train_batch_end(self, trainer: Trainer, *args: Any, **kwargs: Any) -> None:
        """CellProgress reads the time left after each step."""

    def on_train_epoch_end(self, trainer: Trainer, *args: Any, **kwargs: Any) -> None:
        """CellProgress reads the time left after each step."""


def _timer(trainer: Trainer) -> Timer | None:
    return next((callback for callback in trainer.callbacks if isinstance(callback, Timer)), None)


class CellProgress(Callback):
    """Reports a cell's progress to progress.json and stops the cell when a budget runs out (the cell's
    trainer.max_time read from CellTimer, the grid's deadline), at a point where resuming is exact, as a SIGTERM
    stops a run: after a step that no validation follows, last.ckpt is written and training ends (BudgetSpent);
    at a step a validation follows, after that validation (which writes last.ckpt). Lightning's own stop (its
    Timer's `should_stop`) would validate once more at any step and save a state from which a continued run
    validates off its schedule."""

    def __init__(self, folder: Path, deadline: float | None, every: float = 2.0) -> None:
        self.folder = folder
        self.deadline = deadline  # time.time() at which the grid's budget ends
        self.every = every
        self.written = 0.0
        self.past_deadline = False
        self.cut: str | None = None  # why training stopped before trainer.max_steps
        self.step = 0
        self.best_val_acc: float | None = None
        self.train_seconds: float | None = None

    def _write(self, trainer: Trainer) -> None:
        self.step = trainer.global_step
        best = trainer.callback_metrics.get("val/acc_best")
        if best is not None:
            self.best_val_acc = float(best)
        progress = {"step": self.step, "max_steps": trainer.max_steps, "best_val_acc": self.best_val_acc}
        write_atomically(self.folder / PROGRESS, json.dumps(progress) + "\n")
        self.written = time.monotonic()

    def _ended(self, trainer: Trainer) -> None:
        """Record why and when training ended, and its time."""
        timer = _timer(trainer)
        self.train_seconds = None if timer is None else round(timer.time_elapsed(), 1)
        if trainer.max_steps > 0 and trainer.global_step < trainer.max_steps:
            out_of_time = timer is not None and (timer.time_remaining() or 0.0) <= 0
            self.cut = "grid budget" if self.past_deadline else "cell budget" if out_of_time else "stopped"
        self._write(trainer)

    def on_train_batch_end(self, trainer: Trainer, *args: Any) -> None:
        if self.deadline is not None and time.time() >= self.deadline:
            self.past_deadline = True
        timer = _timer(trainer)
        spent = self.past_deadline or (timer is not None and (timer.time_remaining() or 0.0) <= 0)
        if spent and trainer.global_step < trainer.max_steps:
            if validation_follows(trainer):
                trainer.should_stop = True  # after this step's validation, which writes last.ckpt
            elif isinstance(trainer.checkpoint_callback, SelectionCheckpoint):
                trainer.checkpoint_callback.write_last(trainer)
                self._ended(trainer)
                raise BudgetSpent(f"stopped at step {trainer.global_step} by the {self.cut}")
        if time.monotonic() - self.written >= self.every:
            self._write(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._write(trainer)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._ended(trainer)


def run_cell(folder: Path) -> dict[str, Any]:
    """Train the cell whose record (status `running`) is in `folder`, continuing from its last.ckpt; the record
    ends finished, cut short or failed (the error re-raised)."""
    record = read_record(folder)
    if record is None:
        raise ConfigError(f"{folder / RECORD}: no cell record to run")
    progress = CellProgress(folder, record.get("deadline"))
    record.update(threads=torch.get_num_threads(), cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"))
    try:
        try:
            max_time = (record["config"].get("trainer") or {}).get("max_time")
            callbacks = [progress] if max_time is None else [progress, CellTimer(duration=max_time)]
            run = fit_task(record["cell"], record["config"], folder, test=True, callbacks=callbacks, resume=True)
        except RuntimeError:
            if progress.cut is None:
                raise
            run = None  # cut before its first validation: no score at all
        if progress.cut is None and (run is None or run.test_acc is None):
            raise RuntimeError(f"{record['cell']}: the test split was not scored; re-run the suite to continue it")
    except BaseException as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        record.update(status="failed", error=f"{type(error).__name__}: {message}".rstrip(": "), ended=now())
        write_record(folder, record)
        raise
    if run is not None and progress.cut is None:
        record.update({key: value for key, value in run.to_dict().items() if key != "task"}, status="finished")
    else:
        record.update(status="cut short", cut_by=progress.cut, steps=progress.step, best_val_acc=progress.best_val_acc)
    record.update(train_seconds=progress.train_seconds, ended=now())
    write_record(folder, record)
    return record


def main(argv: list[str]) -> int:
    """`python -m lra.suite.cell FOLDER`: the child process of `lra suite --jobs N`; its output is the cell's log."""
    follow_parent()
    show_harness_logs()
    try:
        run_cell(Path(argv[0]))
    except BaseException:  # recorded as failed; the traceback goes to the cell's log
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
