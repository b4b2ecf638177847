"""N jobs on one machine (`lra suite --jobs N`, `lra sweep --jobs N`): where each runs, and its child process.

Each job gets cores // N torch threads (OMP/MKL thread counts in its environment, which torch reads at start-up),
so N jobs never oversubscribe the CPU; with GPUs, jobs take them round robin (CUDA_VISIBLE_DEVICES), several jobs
sharing one GPU when N exceeds their number.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from lra.overrides import ConfigError

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
PR_SET_PDEATHSIG = 1  # prctl option: a signal for the child when its parent dies
PARENT_VARIABLE = "LRA_PARENT_PID"  # set in a child's environment: the process that started it


@dataclass(frozen=True)
class Slot:
    """Where one job runs: its torch threads and its GPU (a CUDA_VISIBLE_DEVICES entry), if any."""

    index: int
    threads: int
    gpu: str | None = None

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """`base` with this slot's threads and GPU, unbuffered output and no progress bars of its own."""
        env = {**base, **dict.fromkeys(THREAD_VARIABLES, str(self.threads))}
        env.update(PYTHONUNBUFFERED="1", LRA_PROGRESS="off")
        if self.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpu
        return env

    def describe(self) -> str:
        threads = f"{self.threads} thread{'s' * (self.threads != 1)}"
        return f"GPU {self.gpu}, {threads}" if self.gpu is not None else f"CPU, {threads}"


def check_jobs(jobs: int, flag: str = "--jobs") -> int:
    if jobs < 1:
        raise ConfigError(f"{flag} must be a whole number >= 1 (jobs run at once), got {jobs}")
    return jobs


def cpu_cores() -> int:
    """The cores this process may use (its affinity: a SLURM allocation or taskset, not the whole machine)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """The GPUs jobs may use: the entries of CUDA_VISIBLE_DEVICES when set, else every device torch sees."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [entry.strip() for entry in listed.split(",") if entry.strip() and entry.strip() != "-1"]
    import torch

    return [str(index) for index in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def plan_slots(jobs: int, cores: int | None = None, gpus: Sequence[str] | None = None) -> list[Slot]:
    """`jobs` slots: cores // jobs threads each (at least 1), GPUs round robin."""
    cores = cpu_cores() if cores is None else cores
    gpus = visible_gpus() if gpus is None else list(gpus)
    threads = max(1, cores // jobs)
    return [Slot(index, threads, gpus[index % len(gpus)] if gpus else None) for index in range(jobs)]


def follow_parent() -> None:
    """In a child that start_child started (Linux): be killed when the parent dies, so a killed runner leaves no
    orphan training into a folder another worker may take over."""
    parent = os.environ.get(PARENT_VARIABLE)
    if parent is None or sys.platform != "linux":
        return
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(parent):  # the parent died before prctl took effect
        sys.exit(1)


def start_child(args: Sequence[str], slot: Slot, log: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """`python ARGS` (this interpreter) in `slot`, its output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as output:
        return subprocess.Popen(
            [sys.executable, *args],
            cwd=cwd,
            env={**slot.env(os.environ), PARENT_VARIABLE: str(os.getpid())},
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def stop_child(child: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace` s."""
    if child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
