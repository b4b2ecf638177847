"""`lra sweep --jobs N`: N workers of one study on this machine, each a child `lra sweep` in its own slot (threads,
GPU), exactly as workers on N machines would be: they share the storage, and each has its own sampler seed."""

from __future__ import annotations

import argparse
import time

import optuna

from lra.job_progress import Board
from lra.jobs import plan_slots, start_child, stop_child
from lra.sweep.config import SweepConfig
from lra.sweep.study import FINISHED, count

PROG = "lra sweep"


def worker_args(args: argparse.Namespace, config: SweepConfig, index: int) -> list[str]:
    """The child's `python -m lra sweep ...`: this command's settings, the resolved storage, and seed base + index."""
    argv = ["-m", "lra", "sweep", "--config", str(config.path), "--n-trials", str(config.n_trials)]
    argv += ["--storage", config.storage_url, "--study-name", config.study_name]
    base = args.seed if args.seed is not None else config.sampler.get("seed")
    if base is not None:
        argv += ["--seed", str(base + index)]
    for assignment in args.set:
        argv += ["--set", assignment]
    return argv


def run_workers(args: argparse.Namespace, config: SweepConfig, study: optuna.Study, jobs: int) -> int:
    """Start `jobs` workers, show their progress until they exit; 1 if any failed."""
    slots = plan_slots(jobs)
    folder = config.out_dir
    print(f"{PROG}: {jobs} workers ({slots[0].describe()} each); their logs: {folder}/worker-<N>.log")
    children = [
        start_child(worker_args(args, config, slot.index), slot, folder / f"worker-{slot.index}.log") for slot in slots
    ]
    board = Board(PROG, config.n_trials, count(study, FINISHED), jobs, "trials")
    for slot in slots:
        board.start(slot.index, f"worker {slot.index}", f"worker {slot.index} started ({slot.describe()})")
    try:
        running = set(range(jobs))
        while running:
            time.sleep(2.0)
            board.count(min(count(study, FINISHED), config.n_trials))
            for index in sorted(running):
                code = children[index].poll()
                if code is not None:
                    running.discard(index)
                    board.end(index, f"worker {index} exited with code {code}")
    finally:
        board.close()
        for child in children:
            stop_child(child)
    failed = [index for index, child in enumerate(children) if child.returncode != 0]
    if failed:
        logs = ", ".join(str(folder / f"worker-{index}.log") for index in failed)
        print(f"{PROG}: worker(s) {', '.join(map(str, failed))} failed; see {logs}")
        return 1
    return 0
