"""`lra suite`: train the grid of a suite file (task × encoder × seed), here or with workers on many machines, score
each cell's test split from its best-validation checkpoint, and report mean ± std per encoder and task and the LRA
average: OUT/results.json, OUT/results.md (beside the published table), OUT/figures, TensorBoard OUT/suite."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from lra.data.tasks import AVERAGED_TASKS
from lra.jobs import check_jobs, cpu_cores, plan_slots
from lra.overrides import ConfigError, digest, parse_assignments
from lra.suite.budget import Budget, parse_duration, shown
from lra.suite.config import (
    SUITE_RUN,
    SuiteConfig,
    SuiteTask,
    load_suite_config,
    select_encoders,
    select_seeds,
    select_tasks,
    suite_tasks,
)
from lra.suite.figures import draw
from lra.suite.grid import Cell, encoders_of, grid_cells
from lra.suite.report import load_records, summarize, write_results
from lra.suite.runner import PROG, CellQueue, LocalQueue, Runner
from lra.suite.tensorboard import TableLog
from lra.sweep.config import Heartbeat
from lra.training.checkpoint import StoppedBySignal
from lra.training.run import check_config


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train the grid of a suite file (every task × encoder × seed), score each cell's test split from "
        "its best-validation checkpoint and report mean ± std per encoder and task and the LRA average beside the "
        "published protocol-2 table. Re-running continues a suite.",
    )
    parser.add_argument("--config", type=Path, required=True, help="the suite file, e.g. sweeps/suites/lra.yaml")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a dotted config key of every cell (value read as YAML), on top of the file's set, task_set and "
        "encoders; repeatable, e.g. --set data.root=/data/lra_release",
    )
    parser.add_argument("--tasks", metavar="A,B", help="train these tasks (names or config paths), not the file's list")
    parser.add_argument("--encoders", metavar="A,B", help="train only these of the file's encoders")
    parser.add_argument("--seeds", metavar="0,1,2", help="train these seeds, not the file's list")
    parser.add_argument(
        "--out",
        type=Path,
        help="the suite folder (default: runs/suite/<config stem>, or runs/suite/<stem>-<digest> with --set)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="cells trained at once, each a child process with cores/N threads and a GPU (round robin) when there "
        "are GPUs (default 1: one after another in this process)",
    )
    parser.add_argument("--cell-budget", metavar="DURATION", help="training time per cell (trainer.max_time), e.g. 2h")
    parser.add_argument("--grid-budget", metavar="DURATION", help="time for this run of the grid, e.g. 12h")
    parser.add_argument(
        "--storage",
        metavar="URL",
        help="hand the cells out through this Optuna storage (postgresql://..., sqlite:///...), shared by workers "
        "on many machines with the same --out on a shared disk",
    )
    parser.add_argument(
        "--study-name", help="the grid's study in --storage (default: suite-<name of the --out folder>)"
    )
    return parser.parse_args(argv)


def default_out(config: Path, cli_set: Mapping[str, Any]) -> Path:
    """runs/suite/<stem>, or runs/suite/<stem>-<digest of the --set values>, so each setting has its own folder."""
    return Path("runs") / SUITE_RUN / (f"{config.stem}-{digest(dict(cli_set))}" if cli_set else config.stem)


def budget_of(suite: SuiteConfig, args: argparse.Namespace) -> Budget:
    """The file's budget, each part replaced by its command-line flag when given."""
    cell = parse_duration(args.cell_budget, "--cell-budget") if args.cell_budget is not None else suite.budget.cell
    grid = parse_duration(args.grid_budget, "--grid-budget") if args.grid_budget is not None else suite.budget.grid
    return Budget(cell, grid)


def check_cells(suite: SuiteConfig, cli_set: Mapping[str, Any], cells: Sequence[Cell]) -> None:
    """Every task's config and data, then every encoder's overrides on it, before anything trains (a seed changes
    nothing that could fail)."""
    checked: set[str] = set()
    for task in suite_tasks(suite, cli_set):
        check_config(task.config, f"{suite.path}: task {task.name!r}")
        checked.add(digest(task.config))
    for cell in cells:
        if digest(cell.task.config) not in checked:
            check_config(cell.task.config, f"{suite.path}: encoders[{cell.encoder!r}] (task {cell.task.name!r})")
            checked.add(digest(cell.task.config))


def check_records(
    records: Mapping[str, dict[str, Any]], suite: SuiteConfig, file: SuiteConfig, cli_set: Mapping[str, Any], out: Path
) -> None:
    """Refuse a recorded cell (any seed) whose task and encoder the suite file still has, with another config now."""
    pairs: dict[tuple[str, str], tuple[SuiteTask, dict[str, Any]]] = {}
    for tasks in (file, replace(suite, encoders=file.encoders)):  # the file's tasks, and those picked by --tasks
        for name, overrides in encoders_of(tasks, cli_set).items():
            pairs.update(
                {(task.name, name): (task, overrides) for task in suite_tasks(tasks, cli_set, (name, overrides))}
            )
    for key, record in records.items():
        pair = pairs.get((record["task"], record["encoder"]))
        if pair is None:
            continue
        now = Cell(pair[0], record["encoder"], record["seed"], pair[1]).digest
        if record.get("config_digest") != now:
            raise ConfigError(
                f"{out / key / 'cell.json'}: cell {key!r} was run here with another config (digest "
                f"{record.get('config_digest')}, now {now}: the suite file, --set or {pair[0].config_path} changed); "
                f"use --out DIR for a new suite folder, or delete {out / key} to retrain the cell"
            )


def to_train(cells: Sequence[Cell], records: Mapping[str, dict[str, Any]], budget: Budget) -> list[Cell]:
    """The cells that still need training: not finished, and not cut short by a cell budget no larger than now."""
    todo = []
    for cell in cells:
        record = records.get(cell.key) or {}
        status = record.get("status")
        if status == "finished":
            print(f"{PROG}: {cell.key}: already done (test acc {100 * record['test_acc']:.2f}%), skipped")
            continue
        spent = record.get("cell_budget") if record.get("cut_by") == "cell budget" else None
        if status == "cut short" and spent is not None and budget.cell is not None and budget.cell <= spent:
            print(
                f"{PROG}: {cell.key}: cut short at step {record.get('steps')} by its cell budget ({shown(spent)}), "
                "skipped; a larger --cell-budget continues it"
            )
            continue
        todo.append(cell)
    return todo


def hparams_of(suite: SuiteConfig, cli_set: Mapping[str, Any], cells: Sequence[Cell]) -> dict[str, dict[str, Any]]:
    """Per encoder, its settings for TensorBoard's HParams view: the suite, tasks, attention, protocol, seeds, and every
    override (a task's own as `<task>.<key>`)."""
    by_encoder: dict[str, list[Cell]] = {}
    for cell in cells:
        by_encoder.setdefault(cell.encoder, []).append(cell)
    settings: dict[str, dict[str, Any]] = {}
    for name, mine in by_encoder.items():
        attentions = {cell.task.attention for cell in mine}
        params = settings[name] = {
            "suite": str(suite.path),
            "encoder": name,
            "tasks": ",".join(dict.fromkeys(cell.task.name for cell in mine)),
            "attention": attentions.pop() if len(attentions) == 1 else "per task",
            "protocol": "+".join(sorted({cell.task.protocol for cell in mine})),
            "seeds": ",".join(map(str, dict.fromkeys(cell.seed for cell in mine))),
        }
        for overrides in (suite.set, mine[0].encoder_overrides, cli_set):
            params.update(overrides)
        for task, overrides in suite.task_set.items():
            params.update({f"{task}.{key}": value for key, value in overrides.items()})
    return settings


def print_averages(table: Mapping[str, dict[str, Any]]) -> None:
    for name, row in table.items():
        average = row["average"]
        if average["mean"] is None:
            continue
        spread = "" if average["std"] is None else f" ± {100 * average['std']:.2f}"
        over = ", ".join(average["over"])
        print(
            f"{PROG}: {name}: LRA average {100 * average['mean']:.2f}%{spread} over {len(average['over'])} of "
            f"{len(AVERAGED_TASKS)} tasks ({over})"
        )


def run_suite(args: argparse.Namespace) -> int:
    """Check every cell's config and data, then train the unfinished cells, recording each as it ends."""
    jobs = check_jobs(args.jobs)
    file = load_suite_config(args.config)
    suite = file
    if args.tasks is not None:
        suite = select_tasks(suite, args.tasks)
    if args.encoders is not None:
        suite = select_encoders(suite, args.encoders)
    if args.seeds is not None:
        suite = select_seeds(suite, args.seeds)
    budget = budget_of(suite, args)
    cli_set = parse_assignments(args.set)
    out = args.out or default_out(args.config, cli_set)
    cells = grid_cells(suite, cli_set)
    check_cells(suite, cli_set, cells)
    records = load_records(out)
    check_records(records, suite, file, cli_set, out)
    encoders = list(dict.fromkeys(cell.encoder for cell in cells))
    tasks = list(dict.fromkeys(cell.task.name for cell in cells))
    seeds = list(dict.fromkeys(cell.seed for cell in cells))
    shape = f"{len(tasks)} task(s) × {len(encoders)} encoder(s) × {len(seeds)} seed(s)"
    print(f"{PROG}: {len(cells)} cells ({shape}) checked; results in {out}")
    todo = to_train(cells, records, budget)
    if not todo:
        print_averages(summarize(records, encoders))
        print(f"{PROG}: nothing to train; {out / 'results.md'}, {out / 'results.json'}")
        return 0
    slots = plan_slots(jobs)
    if jobs > 1 and jobs > cpu_cores() and slots[0].gpu is None:
        print(f"{PROG}: --jobs {jobs} on {cpu_cores()} cores: each cell gets 1 thread, and the cells share the cores")
    where = "one at a time in this process" if jobs == 1 else f"{jobs} at a time ({slots[0].describe()} each)"
    print(f"{PROG}: {len(todo)} to train, {where}; cell budget {shown(budget.cell)}, grid budget {shown(budget.grid)}")
    if args.storage is not None:
        from lra.suite.shared import StudyQueue

        study_name = args.study_name or f"suite-{out.resolve().name}"
        queue: CellQueue = StudyQueue(args.storage, study_name, out, todo, Heartbeat(**suite.heartbeat))
        print(f"{PROG}: cells handed out through {queue.where} (optuna-dashboard {args.storage})")
    else:
        queue = LocalQueue(todo)
    log = TableLog(out, tasks, hparams_of(suite, cli_set, cells))
    tables: list[dict[str, dict[str, Any]]] = []

    def on_end(cell: Cell, record: dict[str, Any]) -> None:
        tables.append(write_results(out, str(suite.path), encoders))
        log.log(cell.encoder, tables[-1][cell.encoder])

    try:
        poll = 1.0 if args.storage is None else max(1.0, Heartbeat(**suite.heartbeat).interval / 2)
        ended = Runner(out, queue, slots, budget, on_end, in_process=jobs == 1, poll=poll).run()
    finally:
        log.close()
    if tables:
        for path in draw(out, tables[-1], load_records(out)):
            print(f"{PROG}: drew {path}")
        print_averages(tables[-1])
    print(f"{PROG}: {out / 'results.md'}, {out / 'results.json'}; TensorBoard: tensorboard --logdir {out}")
    failed = [record["cell"] for record in ended if record.get("status") == "failed"]
    if failed:
        print(f"{PROG}: {len(failed)} cell(s) failed ({', '.join(failed)}); re-run the same command to continue them")
        return 1
    return 0


def main(argv: Sequence[str]) -> int:
    """`lra suite --config FILE [...]`; user errors exit 1 in one line, SIGTERM exits 0 after saving the running
    cell's state."""
    try:
        return run_suite(parse_args(argv))
    except (ValueError, FileNotFoundError) as error:  # config, --set, data: the message names the file or key
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    except StoppedBySignal as stopped:  # SIGTERM: the cell's state is saved
        print(f"{PROG}: {stopped}. Run the same command to continue from it", file=sys.stderr)
        return 0
