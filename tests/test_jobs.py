"""Jobs on one machine: slots (threads, GPU round robin), the environment a child gets, and children that die with
the process that started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lra.jobs import Slot, check_jobs, plan_slots, start_child, visible_gpus
from lra.overrides import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_slots_split_the_cores_and_take_gpus_round_robin() -> None:
    assert plan_slots(4, cores=16, gpus=["0", "1"]) == [
        Slot(0, 4, "0"),
        Slot(1, 4, "1"),
        Slot(2, 4, "0"),
        Slot(3, 4, "1"),
    ]
    assert plan_slots(3, cores=2, gpus=[]) == [Slot(0, 1), Slot(1, 1), Slot(2, 1)]  # at least one thread each
    assert plan_slots(1, cores=8, gpus=["3"]) == [Slot(0, 8, "3")]
    assert (Slot(0, 1).describe(), Slot(1, 8, "2").describe()) == ("CPU, 1 thread", "GPU 2, 8 threads")


def test_a_slots_environment() -> None:
    env = Slot(1, 4, "1").env({"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0,1", "OMP_NUM_THREADS": "16"})
    assert env["PATH"] == "/bin" and env["CUDA_VISIBLE_DEVICES"] == "1" and env["LRA_PROGRESS"] == "off"
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "4"
    assert "CUDA_VISIBLE_DEVICES" not in Slot(0, 2).env({"PATH": "/bin"})


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 3")
    assert visible_gpus() == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert visible_gpus() == []


def test_jobs_must_be_at_least_one() -> None:
    assert check_jobs(2) == 2
    with pytest.raises(ConfigError, match=r"^--jobs must be a whole number >= 1 \(jobs run at once\), got 0$"):
        check_jobs(0)


def test_a_child_runs_torch_with_its_slots_threads_and_gpu(tmp_path: Path) -> None:
    script = "import os, torch; print(torch.get_num_threads(), os.environ['CUDA_VISIBLE_DEVICES'])"
    child = start_child(["-c", script], Slot(0, 1, "7"), tmp_path / "child.log")
    assert child.wait(timeout=120) == 0
    assert (tmp_path / "child.log").read_text().split() == ["1", "7"]


def test_a_child_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """A runner killed outright (SIGKILL: no clean-up) leaves no child training on."""
    child_code = (
        "from lra.jobs import follow_parent; import time; follow_parent(); print('up', flush=True); time.sleep(120)"
    )
    runner_code = (
        "import sys, time; from pathlib import Path; from lra.jobs import Slot, start_child\n"
        f"child = start_child(['-c', {child_code!r}], Slot(0, 1), Path(sys.argv[1]))\n"
        "print(child.pid, flush=True); time.sleep(120)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runner = subprocess.Popen(
        [sys.executable, "-c", runner_code, str(tmp_path / "child.log")], stdout=subprocess.PIPE, text=True, env=env
    )
    pid = int(runner.stdout.readline())
    deadline = time.monotonic() + 60
    while "up" not in (tmp_path / "child.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait(timeout=30)
    deadline = time.monotonic() + 30
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        pytest.fail(f"the child {pid} outlived its parent by 30 s")


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (dead, waiting for whoever adopted it to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
