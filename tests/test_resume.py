"""Exact resume through the real commands (subprocesses) on tiny generated ListOps, on CPU: a run killed (SIGKILL) or
stopped (SIGTERM) at any point and resumed ends with the weights, optimizer state and logged metrics of the run that
was never interrupted; atomic checkpoint writes, the fall-back past an unreadable last.ckpt, the changed-config
refusal."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lra.training.lightning_cli import LRACLI
from lra.training.resume import ResumeError, prepare_resume

REPO = Path(__file__).resolve().parents[1]
LIGHTNING = Path(sys.executable).parent / "lightning"
RUN = Path("runs") / "listops" / "version_0"
LAST = RUN / "checkpoints" / "last.ckpt"
STEPS, VALIDATE_EVERY, CHECKPOINT_EVERY = 12, 4, 3
TINY = [
    "--config", str(REPO / "tasks" / "listops.yaml"),
    "--trainer.max_steps", str(STEPS),
    "--trainer.val_check_interval", str(VALIDATE_EVERY),
    "--checkpoint.every_n_train_steps", str(CHECKPOINT_EVERY),
    "--trainer.log_every_n_steps", "1",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--data.num_train", "64", "--data.num_val", "32", "--data.num_test", "32",
    "--data.spec.max_depth", "2", "--data.spec.min_length", "5", "--data.spec.max_length", "24",
    "--data.max_length", "32", "--data.batch_size", "8", "--data.eval_batches", "2", "--data.num_workers", "0",
    "--model.dim", "16", "--model.ffn_dim", "32", "--model.lr", "0.003", "--model.warmup_steps", "2",
    "--test_after_fit", "false",
]  # fmt: skip
# Where the run is killed: two training steps drawn at random after the first checkpoint (seeded, so a failure
# reproduces) and the middle of a validation. Each resumes from the newest checkpoint before the kill.
KILLS = [("train", step) for step in random.Random(15).sample(range(VALIDATE_EVERY, STEPS), 2)] + [("validation", 8)]


def saved_before(when: str, step: int) -> int:
    """The newest checkpointed step a kill at `when` of `step` leaves (every 3 steps, and at each validation)."""
    last = step if when == "after" else step - 1
    return max(s for s in range(1, last + 1) if s % CHECKPOINT_EVERY == 0 or s % VALIDATE_EVERY == 0)


def fit(
    work: Path, *args: str, signalled: tuple[str, str, int] | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`lightning fit TINY ARGS` in `work`; `signalled` = (KILL|TERM|USR1, when, step): the run sends itself that
    signal; `env`: extra environment variables."""
    env = {
        **os.environ,
        "LRA_CACHE_DIR": str(work.parent / "cache"),
        "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    if signalled is None:
        program = [str(LIGHTNING)]
    else:
        name, when, step = signalled
        program = [sys.executable, "-m", "helpers.killed_fit", name, when, str(step)]
    command = [*program, "fit", *TINY, *args]
    return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=300)


def series(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of a run folder as TensorBoard shows it: all event files in order, purged events dropped."""
    accumulator = EventAccumulator(str(run))
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def state(path: Path) -> dict[str, Any]:
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    return {key: checkpoint[key] for key in ("global_step", "state_dict", "optimizer_states", "lr_schedulers")}


def assert_equal_states(resumed: dict[str, Any], reference: dict[str, Any]) -> None:
    """Bitwise: every weight, every optimizer moment, the schedule, the step."""
    assert resumed["global_step"] == reference["global_step"] == STEPS
    assert resumed["state_dict"].keys() == reference["state_dict"].keys()
    for name, tensor in reference["state_dict"].items():
        assert torch.equal(resumed["state_dict"][name], tensor), name
    for ours, theirs in zip(resumed["optimizer_states"], reference["optimizer_states"], strict=True):
        for index, moments in theirs["state"].items():
            for key, value in moments.items():
                assert torch.equal(torch.as_tensor(ours["state"][index][key]), torch.as_tensor(value)), (index, key)
    assert resumed["lr_schedulers"] == reference["lr_schedulers"]


def assert_same_curves(resumed: dict[str, list[tuple[int, float]]], reference: dict, from_step: int = 0) -> None:
    """From step `from_step` (the resume point) on, every logged value at every step is the reference's; before it,
    whatever the killed run had written to disk is the reference's too (a clean stop writes everything: 0)."""
    assert resumed.keys() == reference.keys()
    for tag, events in reference.items():
        assert [e for e in resumed[tag] if e[0] >= from_step] == [e for e in events if e[0] >= from_step], tag
        assert set(e for e in resumed[tag] if e[0] < from_step) <= set(events), tag


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run (its folder)."""
    work = tmp_path_factory.mktemp("resume") / "reference"
    work.mkdir()
    result = fit(work)
    assert result.returncode == 0, result.stderr[-4000:]
    return work


@pytest.mark.parametrize(("when", "step"), KILLS, ids=[f"{when}{step}" for when, step in KILLS])
def test_a_run_killed_anywhere_resumes_to_the_same_numbers(reference: Path, when: str, step: int) -> None:
    work = reference.parent / f"killed-{when}{step}"
    work.mkdir()
    killed = fit(work, signalled=("KILL", when, step))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-4000:]
    resumed_from = torch.load(work / LAST, map_location="cpu", weights_only=False)["global_step"]
    assert resumed_from == saved_before(when, step)

    resumed = fit(work, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert f"resuming {RUN} from step {resumed_from} ({LAST})" in resumed.stderr
    assert "not resumable" not in resumed.stderr and "dirpath has changed" not in resumed.stderr
    assert sorted(path.name for path in (work / RUN.parent).iterdir()) == ["version_0"]  # one run folder, one curve
    assert_equal_states(state(work / LAST), state(reference / LAST))
    assert_same_curves(series(work / RUN), series(reference / RUN), from_step=resumed_from)


@pytest.mark.parametrize(("when", "step", "saved"), [("train", 5, 5), ("validation", 8, 8)])
def test_sigterm_saves_exits_0_and_says_how_to_resume(reference: Path, when: str, step: int, saved: int) -> None:
    """SIGTERM at a training step stops there; in a validation, after it (and its checkpoint)."""
    work = reference.parent / f"terminated-{when}{step}"
    work.mkdir()
    stopped = fit(work, signalled=("TERM", when, step))
    assert stopped.returncode == 0, stopped.stderr[-4000:]
    assert (
        f"fit: stopped by SIGTERM at step {saved}; its state is saved in {LAST}. "
        f"To continue, run the same command with --ckpt_path {LAST} (or --ckpt_path last)"
    ) in stopped.stderr
    assert torch.load(work / LAST, map_location="cpu", weights_only=False)["global_step"] == saved

    resumed = fit(work, "--ckpt_path", str(LAST))
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert_equal_states(state(work / LAST), state(reference / LAST))
    assert_same_curves(series(work / RUN), series(reference / RUN))  # every point, the stopped run's included


SCONTROL = """#!/bin/sh
echo "$@" >> "$SCONTROL_LOG"
"""


def test_on_slurm_lightnings_requeue_saves_requeues_and_the_requeued_job_resumes_exactly(reference: Path) -> None:
    """SLURM (its environment, and a stand-in `scontrol` that records its arguments): Lightning's auto-requeue signal
    saves at the end of the step, `scontrol requeue`s the job and stops; the same command (no --ckpt_path) then
    resumes from Lightning's hpc_ckpt_1.ckpt in the run's folder."""
    work = reference.parent / "slurm"
    (work / "bin").mkdir(parents=True)
    (work / "bin" / "scontrol").write_text(SCONTROL)
    (work / "bin" / "scontrol").chmod(0o755)
    slurm = {
        "SLURM_NTASKS": "1", "SLURM_JOB_NAME": "lra", "SLURM_JOB_ID": "4242", "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SCONTROL_LOG": str(work / "scontrol.log"),
        "PATH": os.pathsep.join([str(work / "bin"), os.environ["PATH"]]),
    }  # fmt: skip
    stopped = fit(work, signalled=("USR1", "train", 5), env=slurm)
    assert stopped.returncode == 0, stopped.stderr[-4000:]
    assert "Requeued SLURM job: 4242" in stopped.stderr and "fit: stopped by SIGTERM at step 5" in stopped.stderr
    assert (work / "scontrol.log").read_text() == "requeue 4242\n"

    requeued = fit(work, env=slurm)
    assert requeued.returncode == 0, requeued.stderr[-4000:]
    assert f"resuming {RUN} from step 5 (hpc_ckpt_1.ckpt)" in requeued.stderr
    assert_equal_states(state(work / LAST), state(reference / LAST))
    assert_same_curves(series(work / RUN), series(reference / RUN))


def test_a_truncated_last_checkpoint_falls_back_to_the_newest_readable_one(reference: Path) -> None:
    work = reference.parent / "truncated"
    shutil.copytree(reference, work)
    best = next((work / RUN / "checkpoints").glob("best-*.ckpt"))
    best_step = torch.load(best, map_location="cpu", weights_only=False)["global_step"]
    data = (work / LAST).read_bytes()
    (work / LAST).write_bytes(data[: len(data) // 2])

    resumed = fit(work, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert f"{LAST} is not a readable checkpoint (RuntimeError: " in resumed.stderr
    assert f"resuming from {best.relative_to(work)} (step {best_step}) instead of {LAST}" in resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert_equal_states(state(work / LAST), state(reference / LAST))  # the steps after the best one, trained again

    for checkpoint in (work / RUN / "checkpoints").glob("*.ckpt"):
        checkpoint.write_bytes(b"not a checkpoint")
    refused = fit(work, "--ckpt_path", "last")
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1] == (
        f"fit: no readable checkpoint to resume from in {RUN / 'checkpoints'}; "
        "start a new run by leaving out --ckpt_path"
    )


def test_a_changed_config_is_refused_naming_the_keys(reference: Path) -> None:
    before = sorted((path, path.stat().st_mtime_ns) for path in reference.rglob("*"))
    changed = ["--trainer.max_steps", "20", "--data.batch_size", "4", "--model.attention", "softmax"]
    refused = fit(reference, "--ckpt_path", "last", *changed)
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1] == (
        f"fit: {LAST}: the config differs from the run being resumed in 3 key(s): data.batch_size: 8 -> 4; "
        'model.attention: "nala" -> "softmax"; trainer.max_steps: 12 -> 20. To continue that run with these values '
        "pass --allow_config_change true; to start a new run instead, leave out --ckpt_path (a new run folder) or "
        "give the run another folder"
    )
    assert sorted((path, path.stat().st_mtime_ns) for path in reference.rglob("*")) == before  # nothing written


@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter is intended")  # pytest's own sys.argv
def test_allow_config_change_resumes_anyway(reference: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(reference)
    monkeypatch.setenv("LRA_CACHE_DIR", str(reference.parent / "cache"))
    config = LRACLI(args=[*TINY, "--trainer.max_steps", "20"], run=False).config  # parsed as `fit` parses it
    config.ckpt_path = "last"
    with pytest.raises(ResumeError, match=r"trainer\.max_steps: 12 -> 20\. To continue"):
        prepare_resume(config.clone())
    config.allow_config_change = True
    resumed = prepare_resume(config)
    assert resumed is not None and resumed.checkpoint == LAST and resumed.step == STEPS
    assert config.ckpt_path == str(LAST) and config.trainer.logger.init_args.version == "version_0"
    assert config.trainer.logger.init_args.purge_step == STEPS


DYING_SAVE = """
import io, os, signal, sys, torch
from lra.training.checkpoint import AtomicCheckpointIO
checkpoint_io, path = AtomicCheckpointIO(), sys.argv[1]
checkpoint_io.save_checkpoint({"step": 1}, path)
real_save = torch.save
def dying_save(obj, file):  # writes half of the checkpoint, then the process is killed
    buffer = io.BytesIO()
    real_save(obj, buffer)
    file.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    file.flush()
    os.kill(os.getpid(), signal.SIGKILL)
torch.save = dying_save
checkpoint_io.save_checkpoint({"step": 2, "weights": torch.zeros(10_000)}, path)
"""


def test_a_kill_during_a_save_leaves_the_previous_checkpoint_intact(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints" / "last.ckpt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", DYING_SAVE, str(path)], env=env, capture_output=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert torch.load(path, weights_only=True) == {"step": 1}
    (leftover,) = [p for p in path.parent.iterdir() if p != path]  # the half-written file, under another name
    assert leftover.name.startswith(".last.ckpt.") and leftover.name.endswith(".tmp")
