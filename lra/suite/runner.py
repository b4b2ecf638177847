"""Runs a grid's cells: one at a time in this process (`--jobs 1`), or N at once as child processes, each in its
slot (threads, GPU); cells come from this machine's list (LocalQueue) or a shared Optuna study (StudyQueue)."""

from __future__ import annotations

import shutil
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any, Protocol

from lra.job_progress import Board
from lra.jobs import Slot, start_child, stop_child
from lra.overrides import apply_overrides
from lra.suite.budget import Budget, max_time, shown
from lra.suite.cell import LAST, now, read_progress, read_record, run_cell, write_record
from lra.suite.grid import Cell

PROG = "lra suite"
LOG = "cell.log"  # a child's output, in its cell folder


class CellQueue(Protocol):
    """Where the next cell comes from and where its end is reported."""

    def take(self) -> Cell | None: ...
    def more(self) -> bool: ...
    def lost(self, cell: Cell) -> bool: ...
    def end(self, cell: Cell, record: dict[str, Any]) -> None: ...
    def counts(self) -> tuple[int, int]: ...
    def close(self) -> None: ...


class LocalQueue:
    """This machine's cells, in the grid's order."""

    def __init__(self, cells: Sequence[Cell]) -> None:
        self.todo = deque(cells)
        self.total = len(cells)
        self.ended = 0

    def take(self) -> Cell | None:
        return self.todo.popleft() if self.todo else None

    def more(self) -> bool:
        return False

    def lost(self, cell: Cell) -> bool:
        return False

    def end(self, cell: Cell, record: dict[str, Any]) -> None:
        self.ended += 1

    def counts(self) -> tuple[int, int]:
        return self.ended, self.total

    def close(self) -> None:
        return None


def prepare(cell: Cell, out: Path, budget: Budget, deadline: float | None, child: bool) -> Path:
    """Write the cell's record (status running): what it trains, its budget and the grid's deadline. A cell with no
    last.ckpt starts from step 0: what an earlier attempt left (event files, checkpoints) is removed, so the folder
    holds the one training that counts."""
    folder = cell.folder(out)
    if not (folder / LAST).is_file():
        for stale in folder.glob("events.out.tfevents.*"):
            stale.unlink()
        shutil.rmtree(folder / LAST.parent, ignore_errors=True)
    run_keys: dict[str, Any] = {}
    if budget.cell is not None:
        run_keys["trainer.max_time"] = max_time(budget.cell)
    if child:  # its output is a log file: no progress bar redrawn in it
        run_keys["trainer.enable_progress_bar"] = False
    config = apply_overrides(cell.config, run_keys, cell.key)
    record = {
        "cell": cell.key,
        "task": cell.task.name,
        "encoder": cell.encoder,
        "seed": cell.seed,
        "column": cell.task.column,
        "protocol": cell.task.protocol,
        "attention": cell.task.attention,
        "overrides": cell.task.overrides,
        "encoder_overrides": cell.encoder_overrides,
        "config_path": str(cell.task.config_path),
        "config_digest": cell.digest,
        "max_steps": (config.get("trainer") or {}).get("max_steps"),
        "cell_budget": budget.cell,
        "deadline": deadline,
        "status": "running",
        "host": socket.gethostname(),
        "started": now(),
        "config": config,
    }
    write_record(folder, record)
    return folder


def ended_line(key: str, record: dict[str, Any], log: Path | None) -> str:
    """What became of a cell, in one line."""
    status = record["status"]
    if status == "finished":
        return (
            f"{key}: test acc {100 * record['test_acc']:.2f}% (best val {100 * record['best_val_acc']:.2f}%, "
            f"{record['steps']} steps, {record['seconds']:.0f} s)"
        )
    if status == "cut short":
        budget = f" ({shown(record.get('cell_budget'))})" if record.get("cut_by") == "cell budget" else ""
        return (
            f"{key}: cut short by its {record.get('cut_by')}{budget} at step {record.get('steps')} of "
            f"{record.get('max_steps')}: no test score; re-run with a larger budget to continue it"
        )
    where = f"; log: {log}" if log is not None else ""
    return f"{key}: failed ({record.get('error', 'no message')}){where}"


@dataclass
class Job:
    cell: Cell
    slot: Slot
    child: Popen[bytes]


class Runner:
    """Takes cells while there are free slots and the grid's deadline has not passed; reports each ended cell."""

    def __init__(
        self,
        out: Path,
        queue: CellQueue,
        slots: Sequence[Slot],
        budget: Budget,
        on_end: Callable[[Cell, dict[str, Any]], None],
        in_process: bool,
        poll: float = 1.0,
        live: bool | None = None,
    ) -> None:
        self.out, self.queue, self.slots, self.budget = out, queue, list(slots), budget
        self.on_end, self.in_process, self.poll = on_end, in_process, poll
        self.deadline = None if budget.grid is None else time.time() + budget.grid
        ended, total = queue.counts()
        self.board = Board(PROG, total, ended, 0 if in_process else len(self.slots), "cells", live=live)
        self.ended: list[dict[str, Any]] = []

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.time() >= self.deadline

    def _start_line(self, cell: Cell, slot: Slot | None) -> str:
        last = cell.folder(self.out) / LAST
        what = f"continuing from {last}" if last.is_file() else f"training in {cell.folder(self.out)}"
        return f"{cell.key}: {what}" + ("" if slot is None else f" ({slot.describe()})")

    def _ended(self, cell: Cell, record: dict[str, Any], slot: int, log: Path | None) -> None:
        self.queue.end(cell, record)
        self.on_end(cell, record)
        self.ended.append(record)
        self.board.count(self.queue.counts()[0])
        self.board.end(slot, ended_line(cell.key, record, log))

    def run(self) -> list[dict[str, Any]]:
        """Every cell the queue gives, until it has no more (or the grid's budget is spent); the ended records."""
        try:
            if self.in_process:
                self._run_here()
            else:
                self._run_children()
        finally:
            self.board.close()
            self.queue.close()
        if self.past_deadline():
            self.board.say(f"the grid's budget ({shown(self.budget.grid)}) is spent: no further cells started")
        return self.ended

    def _run_here(self) -> None:
        while not self.past_deadline():
            cell = self.queue.take()
            if cell is None:
                if not self.queue.more():
                    return
                time.sleep(self.poll)  # others' cells are running: take over any that go silent
                continue
            folder = prepare(cell, self.out, self.budget, self.deadline, child=False)
            self.board.start(0, cell.key, self._start_line(cell, None))
            try:
                record = run_cell(folder)
            except BaseException:
                self._ended(cell, read_record(folder) or {"status": "failed"}, 0, None)
                raise
            self._ended(cell, record, 0, None)

    def _run_children(self) -> None:
        running: dict[int, Job] = {}
        try:
            while True:
                free = [slot for slot in self.slots if slot.index not in running]
                while free and not self.past_deadline() and (cell := self.queue.take()) is not None:
                    slot = free.pop(0)
                    folder = prepare(cell, self.out, self.budget, self.deadline, child=True)
                    self.board.start(
                        slot.index, cell.key, self._start_line(cell, slot), cell.config["trainer"].get("max_steps")
                    )
                    child = start_child(["-m", "lra.suite.cell", str(folder)], slot, folder / LOG)
                    running[slot.index] = Job(cell, slot, child)
                if not running and (self.past_deadline() or not self.queue.more()):
                    return
                time.sleep(self.poll)
                for job in list(running.values()):
                    self._check(job, running)
        finally:
            for job in running.values():
                stop_child(job.child)
                self._settle(job)

    def _check(self, job: Job, running: dict[int, Job]) -> None:
        """Progress of a running child; its end when it exited; its stop when another worker took its cell."""
        folder = job.cell.folder(self.out)
        if self.queue.lost(job.cell):
            job.child.kill()  # at once: the worker that took over writes the cell's record now
            job.child.wait()
            del running[job.slot.index]
            self.board.end(job.slot.index, f"{job.cell.key}: taken over by another worker; stopped here")
            return
        if job.child.poll() is None:
            progress = read_progress(folder)
            best = progress.get("best_val_acc")
            self.board.update(job.slot.index, progress.get("step", 0), "" if best is None else f"val {100 * best:.1f}%")
            return
        del running[job.slot.index]
        self._settle(job)

    def _settle(self, job: Job) -> None:
        """Record and report a child that exited (one that died without a word is recorded failed)."""
        folder = job.cell.folder(self.out)
        record = read_record(folder) or {}
        if record.get("status", "running") == "running":
            code = job.child.returncode
            record.update(status="failed", error=f"the cell's process exited with code {code}", ended=now())
            write_record(folder, record)
        self._ended(job.cell, record, job.slot.index, folder / LOG)
