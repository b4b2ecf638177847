"""`lra bench jobs`: cells per hour of `lra suite` with --jobs 1 against --jobs N, on one small grid, in one run.

Each --jobs value trains the same grid (tiny ListOps with the protocol model, encoders × seeds) from scratch in
its own folder through the real command (`python -m lra suite`, so process start-up and checks count), one value
after another; the data cache is shared and filled first, so no value pays for generating it. The ratio is each
value's cells per hour over the first's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from lra.overrides import parse_assignments

TINY_LISTOPS = {
    "data.num_train": 1024, "data.num_val": 64, "data.num_test": 64, "data.eval_batches": 4,
    "data.spec.max_depth": 4, "data.spec.min_length": 5, "data.spec.max_length": 120, "data.max_length": 128,
    "data.batch_size": 16, "data.num_workers": 0,
    "trainer.enable_progress_bar": False, "trainer.enable_model_summary": False,
}  # fmt: skip
ENCODERS = {"nala": {}, "softmax": {"model.attention": "softmax", "model.attention_kwargs": {}}}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lra bench jobs", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="1,2", help="the --jobs values to compare, the first is the reference")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per encoder (cells: 2 encoders × seeds)")
    parser.add_argument("--steps", type=int, default=60, help="training steps per cell (validated twice)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--out", type=Path, help="keep the suite folders here (default: a temporary folder)")
    return parser.parse_args(argv)


def suite_file(folder: Path, seeds: int, steps: int, overrides: dict[str, object]) -> Path:
    suite = {
        "tasks": ["listops"],
        "encoders": ENCODERS,
        "seeds": list(range(seeds)),
        "set": {**TINY_LISTOPS, "trainer.max_steps": steps, "trainer.val_check_interval": max(1, steps // 2)},
    }
    suite["set"].update(overrides)
    path = folder / "bench_jobs.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def run_suite(config: Path, out: Path, jobs: int, env: dict[str, str]) -> float:
    """Wall-clock seconds of `python -m lra suite` on the grid (stdout to out.log); an error stops the benchmark."""
    start = time.perf_counter()
    with open(f"{out}.log", "w") as log:
        code = subprocess.call(
            [sys.executable, "-m", "lra", "suite", "--config", str(config), "--out", str(out), "--jobs", str(jobs)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    if code != 0:
        raise SystemExit(f"lra bench jobs: `lra suite --jobs {jobs}` failed (exit {code}); see {out}.log")
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    values = [int(value) for value in args.jobs.split(",")]
    folder = Path(args.out or tempfile.mkdtemp(prefix="lra-bench-jobs-"))
    folder.mkdir(parents=True, exist_ok=True)
    config = suite_file(folder, args.seeds, args.steps, parse_assignments(args.set))
    env = {**os.environ, "LRA_PROGRESS": "off"}
    cells = len(ENCODERS) * args.seeds
    print(f"lra bench jobs: {cells} cells ({args.steps} steps each) per --jobs value, in {folder}")
    (folder / "warm").mkdir(exist_ok=True)
    warm = suite_file(folder / "warm", 1, 1, parse_assignments(args.set))
    run_suite(warm, folder / "warm" / "out", 1, env)  # fills the data cache
    rows = []
    for jobs in values:
        out = folder / f"jobs-{jobs}"
        seconds = run_suite(config, out, jobs, env)
        records = json.loads((out / "results.json").read_text())["cells"].values()
        training = sum(record["seconds"] for record in records)
        rows.append((jobs, seconds, cells * 3600 / seconds, training))
        print(f"  --jobs {jobs}: {seconds:.1f} s")
    print(f"\n{'jobs':>5} {'cells':>6} {'wall s':>8} {'cells/hour':>11} {'ratio':>6} {'cell fit s (sum)':>17}")
    for jobs, seconds, rate, training in rows:
        print(f"{jobs:>5} {cells:>6} {seconds:>8.1f} {rate:>11.1f} {rate / rows[0][2]:>6.2f} {training:>17.1f}")
    return 0
