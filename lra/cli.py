"""Command-line entry points: `lightning fit|validate|test|predict` and `lra` (the same, plus `data` and `bench`)."""

from __future__ import annotations

import logging
import sys
import warnings
from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI

from lra.checkpoint import SelectionCheckpoint
from lra.data import LRADataModule
from lra.module import LRAClassifier

LINKED_FROM_DATA = ("vocab_size", "num_classes", "max_length", "two_tower", "protocol")
HALF_PRECISIONS = ("16-mixed", "16", "16-true")
log = logging.getLogger("lra.cli")


class LRACLI(LightningCLI):
    """LightningCLI over LRAClassifier and any LRADataModule, with sizes linked from the data.

    Adds a best-validation checkpoint (`--checkpoint.*`, written only after `checkpoint.select_after` of the run)
    and, after `fit`, scores the test split from that best checkpoint, or from the last weights when none was
    written (`--test_after_fit false` turns it off); its metrics are kept in `test_metrics`. fp16 precision
    (protocol 2's) falls back to fp32 where there is no CUDA device.
    `trainer_defaults` and `parser_kwargs` are LightningCLI's (the suite and sweeps add callbacks through them).
    """

    def __init__(
        self,
        args: ArgsType = None,
        run: bool = True,
        trainer_defaults: dict[str, Any] | None = None,
        parser_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.test_metrics: dict[str, float] = {}
        super().__init__(
            LRAClassifier,
            LRADataModule,
            subclass_mode_data=True,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True},
            trainer_defaults=trainer_defaults,
            parser_kwargs=parser_kwargs,
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for name in LINKED_FROM_DATA:
            parser.link_arguments(f"data.{name}", f"model.{name}", apply_on="instantiate")
        parser.add_lightning_class_args(SelectionCheckpoint, "checkpoint")
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

    def before_instantiate_classes(self) -> None:
        """fp16 autocast (the task configs' `16-mixed`, as protocol 2) needs CUDA; elsewhere the run uses fp32."""
        config = self.config.get(self.subcommand, self.config) if self.subcommand else self.config
        trainer = config.get("trainer")
        if trainer is None or str(trainer.get("precision")) not in HALF_PRECISIONS:
            return
        accelerator = str(trainer.get("accelerator") or "auto")
        if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
            return
        log.info("trainer.precision %s needs a CUDA device; training in fp32 (32-true) here", trainer.get("precision"))
        trainer["precision"] = "32-true"

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
        best = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else ""
        if not best:
            warnings.warn(
                "no best-validation checkpoint was written (none before checkpoint.select_after of the run, or "
                "no validation: see --trainer.val_check_interval), so the test split is scored from the last "
                "weights, as protocol 2's code does",
                stacklevel=1,
            )
        results = self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None)
        self.test_metrics = dict(results[0]) if results else {}


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


def main(argv: list[str] | None = None) -> int:
    """`lra fit|validate|test|predict ...` (LightningCLI), `lra data|suite|sweep|bench ...`."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["data"]:
        from lra.data.commands import main as data_main

        show_harness_logs()
        return data_main(argv[1:])
    if argv[:1] == ["sweep"]:
        from lra.sweep import main as sweep_main

        return sweep_main(argv[1:])
    if argv[:1] == ["suite"]:
        from lra.suite import main as suite_main

        return suite_main(argv[1:])
    if argv[:1] == ["bench"]:
        from lra.bench import main as bench_main

        return bench_main(argv[1:])
    lightning_main(argv)
    return 0
