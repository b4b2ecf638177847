"""Cells handed out through an Optuna storage (`lra suite --storage URL`), so workers on many machines fill one grid.

The study's trials are the cells: each cell is queued once as a waiting trial whose user attributes name it
(`cell`, `task`, `encoder`, `seed`, `config_digest`). A worker claims a waiting trial (WAITING -> RUNNING is atomic
in the storage), keeps its heartbeat while the cell trains, and ends it COMPLETE (value: the test accuracy), PRUNED
(cut short by a budget) or FAIL. A worker that dies stops its heartbeat: after the grace period any worker fails
the trial and Optuna's RetryHeartbeatStaleTrialCallback queues a copy, which the next free worker runs,
continuing from the cell's last.ckpt in the shared suite folder.

Two workers that start on a new grid together may both queue a cell. A claimed trial therefore trains only if no
trial of its cell is complete and no earlier-numbered one is waiting or running; otherwise it is failed unrun with
the user attribute `duplicate_of`. So every cell trains once.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from lra.overrides import ConfigError
from lra.suite.cell import read_progress
from lra.suite.grid import Cell
from lra.sweep.config import Heartbeat
from lra.sweep.study import build_storage, shown

KIND = "lra suite grid"  # the study's user attribute `kind`: a study made by `lra suite`, not a sweep
LIVE = (TrialState.WAITING, TrialState.RUNNING)


@dataclass
class Claim:
    """A trial this worker runs: its id and number, and the thread that keeps its heartbeat."""

    trial_id: int
    number: int
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


def cell_attrs(cell: Cell) -> dict[str, Any]:
    return {
        "cell": cell.key,
        "task": cell.task.name,
        "encoder": cell.encoder,
        "seed": cell.seed,
        "config_digest": cell.digest,
    }


class StudyQueue:
    """The cells of this worker's grid that still need training, taken from and reported to an Optuna study."""

    def __init__(self, url: str, study_name: str, out: Path, cells: list[Cell], heartbeat: Heartbeat) -> None:
        self.out = out
        self.cells = {cell.key: cell for cell in cells}
        self.interval = max(1, heartbeat.interval)
        self.storage = build_storage(url, heartbeat)
        self.study = optuna.create_study(
            study_name=study_name, storage=self.storage, direction="maximize", load_if_exists=True
        )
        self.study_id = self.storage.get_study_id_from_name(study_name)
        self.claims: dict[str, Claim] = {}
        self.lost_cells: set[str] = set()
        self.where = f"study {study_name!r} in {shown(url)}"
        self._check_kind()
        self._queue_missing()

    def _check_kind(self) -> None:
        kind = self.study.user_attrs.get("kind")
        if kind is None and self.study.get_trials(deepcopy=False):
            raise ConfigError(f"{self.where} holds trials of something else (a sweep?); give --study-name NAME")
        if kind is None:
            self.study.set_user_attr("kind", KIND)

    def _by_cell(self) -> dict[str, list[FrozenTrial]]:
        trials: dict[str, list[FrozenTrial]] = {}
        for trial in self.study.get_trials(deepcopy=False):
            key = trial.user_attrs.get("cell")
            if key is not None:
                trials.setdefault(key, []).append(trial)
        return trials

    def _queue_missing(self) -> None:
        """Queue each cell that no waiting, running or complete trial covers; refuse one queued with another config."""
        by_cell = self._by_cell()
        for key, cell in self.cells.items():
            current = [t for t in by_cell.get(key, []) if t.state in (*LIVE, TrialState.COMPLETE)]
            for trial in current:
                if trial.user_attrs.get("config_digest") != cell.digest:
                    raise ConfigError(
                        f"{self.where}: cell {key!r} is there with another config (trial {trial.number}, digest "
                        f"{trial.user_attrs.get('config_digest')}, here {cell.digest}): every worker needs the same "
                        "suite file, --set and task configs; or give this grid its own --study-name"
                    )
            if not current:
                self.study.enqueue_trial({}, user_attrs=cell_attrs(cell))

    def counts(self) -> tuple[int, int]:
        """(cells of this grid that ended: complete or cut short, cells of this grid)."""
        by_cell = self._by_cell()
        ended = sum(
            any(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in by_cell.get(key, [])) for key in self.cells
        )
        return ended, len(self.cells)

    def _earlier(self, key: str, number: int) -> int | None:
        """A trial that makes trial `number` of cell `key` a duplicate: complete, or earlier and waiting or running."""
        for trial in self._by_cell().get(key, []):
            complete = trial.state == TrialState.COMPLETE
            if trial.number != number and (complete or (trial.state in LIVE and trial.number < number)):
                return trial.number
        return None

    def take(self) -> Cell | None:
        """Claim the first waiting trial of a cell of this grid (after failing stale trials, which queues retries)."""
        fail_stale_trials(self.study)
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        for trial in sorted(waiting, key=lambda t: t.number):
            cell = self.cells.get(trial.user_attrs.get("cell", ""))
            if cell is None or trial.user_attrs.get("config_digest") != cell.digest:
                continue  # another worker's selection of the grid
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number)
            try:
                if not self.storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                    continue  # another worker claimed it first
            except UpdateFinishedTrialError:
                continue
            self.storage.record_heartbeat(trial_id)
            self.storage.set_trial_user_attr(trial_id, "worker", f"{socket.gethostname()}:{os.getpid()}")
            duplicate = self._earlier(cell.key, trial.number)
            if duplicate is not None:
                self.storage.set_trial_user_attr(trial_id, "duplicate_of", duplicate)
                self.storage.set_trial_state_values(trial_id, TrialState.FAIL)
                continue
            claim = self.claims[cell.key] = Claim(trial_id, trial.number)
            claim.thread = threading.Thread(target=self._beat, args=(cell, claim), daemon=True)
            claim.thread.start()
            return cell
        return None

    def _beat(self, cell: Cell, claim: Claim) -> None:
        """Every heartbeat interval: the heartbeat, the cell's best validation accuracy as an intermediate value (the
        dashboard's curves), and whether another worker failed the trial as stale (then this worker lost it)."""
        reported: set[int] = set()
        while not claim.stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(claim.trial_id)
                if self.storage.get_trial(claim.trial_id).state != TrialState.RUNNING:
                    self.lost_cells.add(cell.key)
                    return
                progress = read_progress(cell.folder(self.out))
                step, value = progress.get("step"), progress.get("best_val_acc")
                if step is not None and value is not None and step not in reported:
                    self.storage.set_trial_intermediate_value(claim.trial_id, step, value)
                    reported.add(step)
            except Exception:  # a lost connection: the next beat tries again (pool_pre_ping reconnects)
                continue

    def more(self) -> bool:
        """Whether cells of this grid may still come: waiting, or running elsewhere (and may go stale here)."""
        return any(
            trial.state in LIVE and key not in self.claims
            for key, trials in self._by_cell().items()
            if key in self.cells
            for trial in trials
        )

    def lost(self, cell: Cell) -> bool:
        """Another worker failed this worker's trial of the cell as stale (its heartbeat came too late)."""
        return cell.key in self.lost_cells

    def end(self, cell: Cell, record: dict[str, Any]) -> None:
        """Stop the heartbeat and end the trial as the record says: complete, pruned (cut short) or failed."""
        claim = self.claims.pop(cell.key)
        claim.stop.set()
        if claim.thread is not None:
            claim.thread.join()
        if cell.key in self.lost_cells:
            return
        status = record["status"]
        try:
            for key in ("status", "test_acc", "best_val_acc", "steps", "cut_by", "error", "log_dir"):
                if record.get(key) is not None:
                    self.storage.set_trial_user_attr(claim.trial_id, key, record[key])
        except UpdateFinishedTrialError:
            return
        # skip_if_finished: failed as stale meanwhile (a late heartbeat), the retry runs the cell
        if status == "finished":
            self.study.tell(claim.number, record["test_acc"], skip_if_finished=True)
        else:
            state = TrialState.PRUNED if status == "cut short" else TrialState.FAIL
            self.study.tell(claim.number, state=state, skip_if_finished=True)

    def close(self) -> None:
        for claim in self.claims.values():
            claim.stop.set()
