"""`lra suite`: train every task of a suite file, score each test split from its best-validation checkpoint,
and report the LRA average: OUT/results.json, OUT/results.md (beside the published table), TensorBoard OUT/suite."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from lra.data.tasks import AVERAGED_TASKS
from lra.overrides import digest, parse_assignments
from lra.suite.config import (
    SUITE_RUN,
    SuiteConfig,
    SuiteTask,
    flow,
    load_suite_config,
    select_tasks,
    suite_tasks,
)
from lra.suite.report import SuiteResults
from lra.training.checkpoint import StoppedBySignal
from lra.training.run import check_config, fit_task


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="lra suite",
        description="Train every task of a suite file, score each test split from its best-validation checkpoint "
        "and report the LRA average beside the published protocol-2 table. Re-running continues a suite.",
    )
    parser.add_argument("--config", type=Path, required=True, help="the suite file, e.g. sweeps/suites/lra.yaml")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a dotted config key of every task (value read as YAML), on top of the file's set and task_set; "
        "repeatable, e.g. --set model.attention=softmax",
    )
    parser.add_argument("--tasks", metavar="A,B", help="train these tasks (names or config paths), not the file's list")
    parser.add_argument(
        "--out",
        type=Path,
        help="the suite folder (default: runs/suite/<config stem>, or runs/suite/<stem>-<digest> with --set)",
    )
    return parser.parse_args(argv)


def default_out(config: Path, cli_set: Mapping[str, Any]) -> Path:
    """runs/suite/<stem>, or runs/suite/<stem>-<digest of the --set values>, so each setting has its own folder."""
    return Path("runs") / SUITE_RUN / (f"{config.stem}-{digest(dict(cli_set))}" if cli_set else config.stem)


def open_writer(
    folder: Path, suite: SuiteConfig, cli_set: Mapping[str, Any], tasks: Sequence[SuiteTask]
) -> SummaryWriter:
    """The suite's TensorBoard run; its first opening records the settings for the HParams view."""
    first = not any(folder.glob("events.out.tfevents.*"))
    writer = SummaryWriter(str(folder))
    if first:
        attentions = {task.attention for task in tasks}
        params: dict[str, Any] = {
            "suite": str(suite.path),
            "tasks": ",".join(task.name for task in tasks),
            "attention": attentions.pop() if len(attentions) == 1 else "per task",
            "protocol": "+".join(sorted({task.protocol for task in tasks})),
        }
        layers = [(suite.set, ""), (cli_set, "")]
        layers += [(overrides, f"{name}.") for name, overrides in suite.task_set.items()]
        for overrides, prefix in layers:
            for key, value in overrides.items():
                scalar = isinstance(value, (bool, int, float, str))
                params[prefix + key] = value if scalar else flow(value)
        names = dict.fromkeys([*AVERAGED_TASKS, *(task.name for task in tasks)])
        metrics = {f"lra/{name}": 0.0 for name in [*names, "average"]}  # declares the metric tags; values unused
        for summary in hparams(params, metrics):
            writer.file_writer.add_summary(summary)
    return writer


def run_suite(args: argparse.Namespace) -> int:
    """Check every task's config and data, then train the unfinished tasks in order, recording each as it ends."""
    suite = load_suite_config(args.config)
    if args.tasks is not None:
        suite = select_tasks(suite, args.tasks)
    cli_set = parse_assignments(args.set)
    tasks = suite_tasks(suite, cli_set)
    out = args.out or default_out(args.config, cli_set)
    for task in tasks:  # every config and every data folder, before anything trains
        check_config(task.config, f"{suite.path}: task {task.name!r}")
    results = SuiteResults.load(out, str(suite.path))
    results.check(tasks)
    print(f"lra suite: {len(tasks)} task(s) checked ({', '.join(t.name for t in tasks)}); results in {out}")
    todo = [task for task in tasks if task.name not in results.done]
    for task in tasks:
        if task not in todo:
            done = results.done[task.name]
            print(f"lra suite: {task.name}: already done (test acc {100 * done['test_acc']:.2f}%), skipped")
    if todo:
        writer = open_writer(out / SUITE_RUN, suite, cli_set, tasks)
        try:
            for task in todo:
                train(task, out, results, tasks, writer)
            value, over = results.average()
            if value is not None:
                writer.add_scalar("lra/average", value, len(over))  # step: how many of the averaged tasks it covers
        finally:
            writer.close()
    value, over = results.average()
    if value is not None:
        covered = f"{len(over)} of {len(AVERAGED_TASKS)} tasks ({', '.join(over)})"
        print(f"lra suite: LRA average {100 * value:.2f}% over {covered}")
    print(f"lra suite: {out / 'results.md'}, {out / 'results.json'}; TensorBoard: tensorboard --logdir {out}")
    return 0


def train(task: SuiteTask, out: Path, results: SuiteResults, tasks: Sequence[SuiteTask], writer: SummaryWriter) -> None:
    """Fit one task (continuing from its last.ckpt if it stopped part-way), score its test split, record it."""
    log_dir = out / task.name
    last = log_dir / "checkpoints" / "last.ckpt"
    print(f"lra suite: {task.name}: " + (f"continuing from {last}" if last.is_file() else f"training in {log_dir}"))
    results.start(task)
    results.save(tasks)
    run = fit_task(task.name, task.config, log_dir, test=True, resume=True)
    if run.test_acc is None:
        raise RuntimeError(f"{task.name}: the test split was not scored; re-run the same command to continue")
    results.finish(task, run)
    results.save(tasks)
    writer.add_scalar(f"lra/{task.name}", run.test_acc, run.steps)  # step: the task's training steps
    writer.flush()
    print(
        f"lra suite: {task.name}: test acc {100 * run.test_acc:.2f}% (best val {100 * run.best_val_acc:.2f}%, "
        f"{run.steps} steps, {run.seconds:.0f} s)"
    )


def main(argv: Sequence[str]) -> int:
    """`lra suite --config FILE [--set KEY=VALUE ...] [--tasks A,B] [--out DIR]`; user errors exit 1 in one line,
    SIGTERM exits 0 after saving the running task's state."""
    try:
        return run_suite(parse_args(argv))
    except (ValueError, FileNotFoundError) as error:  # config, --set, data: the message names the file or key
        print(f"lra suite: {error}", file=sys.stderr)
        return 1
    except StoppedBySignal as stopped:  # SIGTERM: the task's state is saved
        print(f"lra suite: {stopped}. Run the same command to continue from it", file=sys.stderr)
        return 0
