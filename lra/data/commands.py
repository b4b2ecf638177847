"""`lra data generate|prepare|verify`: make the synthetic tasks, build token caches, check them against LRA."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from jsonargparse import ArgumentParser

from lra.data.base import LRADataModule
from lra.data.generate.listops import ListOpsSpec, generate_listops
from lra.data.generate.pathfinder import DIFFICULTIES, RESOLUTIONS, generate_pathfinder
from lra.data.tasks import TASKS
from lra.data.verify import verify
from lra.dispatch import Command, dispatch


def generate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lra data generate", description="Generate a synthetic task's files.")
    tasks = parser.add_subparsers(dest="task", required=True)
    listops = tasks.add_parser("listops", help="ListOps: basic_{train,val,test}.tsv (official algorithm)")
    listops.add_argument("--out", type=Path, required=True, help="folder to write basic_{train,val,test}.tsv into")
    listops.add_argument("--train", type=int, default=96_000, help="number of training examples")
    listops.add_argument("--val", type=int, default=2_000, help="number of validation examples")
    listops.add_argument("--test", type=int, default=2_000, help="number of test examples")
    listops.add_argument("--seed", type=int, default=0)
    listops.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    defaults = ListOpsSpec()
    listops.add_argument("--max-depth", type=int, default=defaults.max_depth, help="tree depth limit")
    listops.add_argument("--max-args", type=int, default=defaults.max_args, help="most arguments per operator")
    listops.add_argument("--min-length", type=int, default=defaults.min_length, help="keep trees longer than this")
    listops.add_argument("--max-length", type=int, default=defaults.max_length, help="keep trees shorter than this")
    pathfinder = tasks.add_parser(
        "pathfinder", help="Pathfinder: pathfinder{N}/curv_*/{imgs,metadata} (the official release's layout)"
    )
    pathfinder.add_argument("--out", type=Path, required=True, help="folder to write pathfinder{N}/... into")
    pathfinder.add_argument("--resolution", type=int, default=32, choices=RESOLUTIONS, help="image side (pixels)")
    pathfinder.add_argument(
        "--difficulty", type=int, default=14, choices=sorted(DIFFICULTIES), help="contour length: 6, 9 or 14 (hard)"
    )
    pathfinder.add_argument("--n", type=int, default=200_000, help="number of images (the release has 200,000)")
    pathfinder.add_argument("--seed", type=int, default=0)
    pathfinder.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    return parser


def generate_main(argv: list[str]) -> int:
    """`lra data generate listops|pathfinder --out DIR ...`."""
    args = generate_parser().parse_args(argv)
    start = time.perf_counter()
    if args.task == "listops":
        spec = ListOpsSpec(args.max_depth, args.max_args, args.min_length, args.max_length)
        paths = generate_listops(args.out, args.train, args.val, args.test, args.seed, spec, args.workers)
        for split, path in paths.items():
            print(f"{split}: {path}")
        total, unit = args.train + args.val + args.test, "examples"
    else:
        folder = generate_pathfinder(args.out, args.resolution, args.difficulty, args.n, args.seed, args.workers)
        print(f"images and metadata: {folder}")
        total, unit = args.n, "images"
    elapsed = time.perf_counter() - start
    print(f"generated {total} {unit} in {elapsed:.1f} s ({total / elapsed:.0f} {unit}/s)")
    return 0


def datamodule_from_args(command: str, task: str, argv: list[str]) -> LRADataModule:
    """The DataModule of `task` with its tasks/<task>.yaml settings, overridden by DataModule arguments in argv."""
    datamodule, settings = TASKS[task]
    parser = ArgumentParser(
        prog=f"lra data {command} {task}",
        description=f"{datamodule.__name__}: the same arguments as --data.* in `lightning fit`.",
    )
    parser.add_class_arguments(datamodule, fail_untyped=True, sub_configs=True)
    parser.set_defaults(settings)
    config = parser.instantiate(parser.parse_args(argv))
    return datamodule(**config.as_dict())


def prepare_main(task: str, argv: list[str]) -> int:
    """Build the task's token cache once (a second run only reports the hit)."""
    datamodule = datamodule_from_args("prepare", task, argv)
    start = time.perf_counter()
    datamodule.prepare_data()
    print(datamodule.describe())
    print(f"token cache: {datamodule.cache_path} ({time.perf_counter() - start:.1f} s)")
    return 0


def verify_main(task: str, argv: list[str]) -> int:
    """Print a summary of the task's data; exit status 1 if anything disagrees with the LRA benchmark's data."""
    report = verify(datamodule_from_args("verify", task, argv))
    print("\n".join(report.lines()))
    return 1 if report.problems else 0


TASK_ARGUMENTS = "TASK [--root DIR] [--cache_dir DIR] [any DataModule argument, e.g. --max_length 1000]"
COMMANDS = {
    "generate": Command(
        "lra.data.commands:generate_main",
        "write a synthetic task's files: generate {listops,pathfinder} --out DIR [options]",
    ),
    "prepare": Command(
        "lra.data.commands:prepare_command",
        "build a task's token cache: prepare TASK [--root DIR] [--cache_dir DIR] [DataModule arguments]",
    ),
    "verify": Command(
        "lra.data.commands:verify_command",
        "check a task's data against the published sizes: verify TASK [the arguments of prepare]",
    ),
}
TASK_LIST = "TASK: " + ", ".join(TASKS)


def task_command(command: str, run: Callable[[str, list[str]], int], argv: list[str]) -> int:
    """`lra data COMMAND TASK ...`: the task name checked, then `run`; bad paths, files or settings in one line."""
    if not argv or argv[0].startswith("-"):
        print(f"usage: lra data {command} {TASK_ARGUMENTS}\n{TASK_LIST}")
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    if argv[0] not in TASKS:
        print(f"lra data {command}: unknown task {argv[0]!r}; expected one of {', '.join(TASKS)}")
        return 2
    try:
        return run(argv[0], argv[1:])
    except (ValueError, FileNotFoundError) as error:  # bad paths, files or settings: the message says which
        print(f"lra data {command} {argv[0]}: {error}", file=sys.stderr)
        return 1


def prepare_command(argv: list[str]) -> int:
    """`lra data prepare TASK ...`."""
    return task_command("prepare", prepare_main, argv)


def verify_command(argv: list[str]) -> int:
    """`lra data verify TASK ...`."""
    return task_command("verify", verify_main, argv)


def main(argv: list[str]) -> int:
    """`lra data COMMAND ...` (`lra data --help` lists the commands)."""
    return dispatch("lra data", COMMANDS, argv, epilog=TASK_LIST)
