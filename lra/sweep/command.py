"""`lra sweep`: an Optuna study over dotted config keys of one task or the suite (see sweeps/*.yaml)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from lra.jobs import check_jobs, follow_parent
from lra.overrides import ConfigError, parse_assignments
from lra.sweep.config import load_sweep_config
from lra.sweep.export import export_best
from lra.sweep.objective import SweepObjective
from lra.sweep.study import TooManyFailures, build_pruner, build_sampler, build_storage, open_study, run_until
from lra.sweep.workers import run_workers
from lra.training.checkpoint import StoppedBySignal


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="lra sweep",
        description="Run (or continue) an Optuna study described by a sweep file; trials score validation only.",
    )
    parser.add_argument("--config", type=Path, required=True, help="the sweep file, e.g. sweeps/nala_listops.yaml")
    parser.add_argument("--n-trials", type=int, help="finished trials wanted in the study in all (default: the file's)")
    parser.add_argument("--storage", help="database URL (default: sqlite:///runs/sweeps/<study>.db)")
    parser.add_argument("--study-name", help="default: the file's study_name, else its stem")
    parser.add_argument("--seed", type=int, help="sampler seed for this worker (default: the file's sampler.seed)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--export-best", type=Path, metavar="FILE.yaml", help="then write the best trial's config")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="workers on this machine, each a child process with cores/N threads and a GPU (round robin) when there "
        "are GPUs, with sampler seeds seed, seed+1, ... (default 1: trials run in this process)",
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    jobs = check_jobs(args.jobs)
    if args.n_trials is not None and args.n_trials < 0:
        raise ConfigError(f"--n-trials must be >= 0, got {args.n_trials}")
    config = load_sweep_config(args.config)
    config = replace(
        config,
        n_trials=config.n_trials if args.n_trials is None else args.n_trials,
        study_name=args.study_name or config.study_name,
        storage=args.storage or config.storage,
    )
    objective = SweepObjective(config, parse_assignments(args.set))
    objective.check()  # every config key and value is checked before the storage is touched or anything trains
    build_sampler(config, args.seed), build_pruner(config)  # their arguments, checked before the storage is touched
    storage = build_storage(config.storage_url, config.heartbeat)
    study = open_study(config, storage, args.seed)
    if jobs > 1:
        status = run_workers(args, config, study, jobs)
    else:
        poll = max(1.0, config.heartbeat.interval / 2)
        run_until(study, objective, config.n_trials, poll, config.max_consecutive_failures)
        status = 0
    if args.export_best and status == 0:
        export_best(study, objective, args.export_best)
        print(f"lra sweep: wrote the best trial's config to {args.export_best}")
    return status


def main(argv: list[str]) -> int:
    """`lra sweep --config FILE ...`; user errors and too many failed trials exit 1 in one line; SIGTERM exits 0
    (the interrupted trial is retried from its checkpoint once its heartbeat is stale)."""
    follow_parent()  # a worker of `lra sweep --jobs N` dies with it
    try:
        return run(parse_args(argv))
    except (ConfigError, TooManyFailures) as error:
        print(f"lra sweep: {error}", file=sys.stderr)
        return 1
    except StoppedBySignal as stopped:
        print(
            f"lra sweep: {stopped}. Run the same command to continue: the trial is retried from that checkpoint "
            "once its heartbeat is stale (heartbeat.grace_period)",
            file=sys.stderr,
        )
    return 0
