"""`lra sweep --jobs 2`: two workers of one study on this machine, each a child process with its share of the
cores and its own sampler seed, complete the requested trials once."""

from __future__ import annotations

from pathlib import Path

import optuna
from helpers.sweep_workers import has_events, trial_folders
from helpers.sweeps import run_sweep, write_sweep
from optuna.trial import TrialState

from lra.jobs import cpu_cores


def test_two_local_workers_complete_the_study(work: Path) -> None:
    config = write_sweep(work, study_name="jobs")
    result = run_sweep(work, "--config", str(config), "--n-trials", "2", "--jobs", "2", "--seed", "5", timeout=600)
    logs = [work / "runs" / "sweeps" / "jobs" / f"worker-{index}.log" for index in range(2)]
    assert result.returncode == 0, result.stdout[-2000:] + "".join(log.read_text()[-2000:] for log in logs)
    threads = max(1, cpu_cores() // 2)
    assert f"lra sweep: 2 workers (CPU, {threads} thread" in result.stdout
    assert "worker 0 exited with code 0" in result.stdout and "worker 1 exited with code 0" in result.stdout
    study = optuna.load_study(study_name="jobs", storage=f"sqlite:///{work / 'runs' / 'sweeps' / 'jobs.db'}")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 2 and not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert len({tuple(sorted(trial.params.items())) for trial in complete}) == 2  # seeds 5 and 6: different points
    folders = trial_folders(work, "jobs")
    assert all(has_events(folders[trial.number]) for trial in complete)
    assert all(log.is_file() for log in logs)
