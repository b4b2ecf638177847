"""Command-line entry points: `lightning fit|validate|test|predict` and `lra` (the same, plus `data` and `bench`)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI

from lra.data import LRADataModule
from lra.data.listops_generator import ListOpsSpec, generate_listops
from lra.module import LRAClassifier

LINKED_FROM_DATA = ("vocab_size", "num_classes", "max_length", "two_tower")
log = logging.getLogger("lra.cli")


class LRACLI(LightningCLI):
    """LightningCLI over LRAClassifier and any LRADataModule, with sizes linked from the data.

    Adds a best-validation checkpoint (`--checkpoint.*`) and, after `fit`, scores the test split
    from that best checkpoint (`--test_after_fit false` turns it off).
    """

    def __init__(self, args: ArgsType = None) -> None:
        super().__init__(
            LRAClassifier,
            LRADataModule,
            subclass_mode_data=True,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True},
            args=args,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for name in LINKED_FROM_DATA:
            parser.link_arguments(f"data.{name}", f"model.{name}", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/acc",
                "checkpoint.mode": "max",
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-step{step}-acc{val/acc:.4f}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=True,
            help="After fit, score the test split from the best-validation checkpoint.",
        )

    def before_fit(self) -> None:
        """A run shorter than one validation interval validates once, at its last step, so it has a best checkpoint."""
        trainer = self.trainer
        interval = trainer.val_check_interval
        if isinstance(interval, int) and 0 < trainer.max_steps < interval:
            log.info(
                "trainer.max_steps (%d) < trainer.val_check_interval (%d): validating at step %d instead",
                trainer.max_steps,
                interval,
                trainer.max_steps,
            )
            trainer.val_check_interval = trainer.max_steps

    def after_fit(self) -> None:
        if not self.config[self.subcommand]["test_after_fit"] or self.trainer.interrupted:
            return
        checkpoint = self.trainer.checkpoint_callback
        if not isinstance(checkpoint, ModelCheckpoint) or not checkpoint.best_model_path:
            warnings.warn(
                "no best-validation checkpoint was written (did validation run? see "
                "--trainer.val_check_interval and --trainer.max_steps), so the test split was not scored",
                stacklevel=1,
            )
            return
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=checkpoint.best_model_path)


def show_harness_logs() -> None:
    """Print the harness's own INFO messages (data generation, cache hits) on the console."""
    logger = logging.getLogger("lra")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def lightning_main(args: ArgsType = None) -> None:
    """`lightning ...`: the LightningCLI of this harness."""
    show_harness_logs()
    LRACLI(args=args)


def data_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lra data", description="Generate, prepare and check LRA data.")
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="generate a synthetic task in its official file format")
    tasks = generate.add_subparsers(dest="task", required=True)
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
    return parser


def data_main(argv: list[str]) -> int:
    """`lra data generate listops --out DIR ...`."""
    args = data_parser().parse_args(argv)
    spec = ListOpsSpec(args.max_depth, args.max_args, args.min_length, args.max_length)
    start = time.perf_counter()
    paths = generate_listops(args.out, args.train, args.val, args.test, args.seed, spec, args.workers)
    elapsed = time.perf_counter() - start
    total = args.train + args.val + args.test
    for split, path in paths.items():
        print(f"{split}: {path}")
    print(f"generated {total} examples in {elapsed:.1f} s ({total / elapsed:.0f} examples/s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`lra fit|validate|test|predict ...` (LightningCLI), `lra data ...`, `lra bench ...`."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["data"]:
        return data_main(argv[1:])
    if argv[:1] == ["bench"]:
        from lra.bench import main as bench_main

        return bench_main(argv[1:])
    lightning_main(argv)
    return 0
