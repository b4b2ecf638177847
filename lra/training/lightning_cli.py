"""LRACLI: the LightningCLI of the harness (`lightning fit|validate|test|predict`, `lra fit|...`), over LRAClassifier
and any LRADataModule, with the data's sizes linked into the model."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lra.data import LRADataModule
from lra.module import LRAClassifier
from lra.training.checkpoint import AtomicCheckpointIO, SelectionCheckpoint, StoppedBySignal
from lra.training.resume import Resumed, ResumeError, RunRecord, flat_config, prepare_resume

LINKED_FROM_DATA = ("vocab_size", "num_classes", "max_length", "two_tower", "protocol")
HALF_PRECISIONS = ("16-mixed", "16", "16-true")
log = logging.getLogger("lra.training")


class LRACLI(LightningCLI):
    """LightningCLI over LRAClassifier and any LRADataModule, with sizes linked from the data.

    Adds the run's checkpoints (`--checkpoint.*`: the best-validation one, written only after
    `checkpoint.select_after` of the run, and last.ckpt every `checkpoint.every_n_train_steps`, at validations and
    on SIGTERM; all written atomically) and, after `fit`, scores the test split from that best checkpoint, or from
    the last weights when none was written (`--test_after_fit false` turns it off); its metrics are kept in
    `test_metrics`. `fit --ckpt_path last|PATH` resumes a run exactly, in its own folder (lra.training.resume), and
    refuses a changed config unless `--allow_config_change true`. A run stopped before trainer.max_steps (by
    `trainer.max_time`) is cut short and gets no test score. fp16 precision (protocol 2's) falls back to fp32 where
    there is no CUDA device.
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
        self.resumed: Resumed | None = None
        try:
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
        except SIGTERMException as stop:  # Lightning stopped at the end of a step, saved (SelectionCheckpoint)
            checkpoint = self.trainer.checkpoint_callback
            saved = checkpoint.last_model_path if isinstance(checkpoint, ModelCheckpoint) else ""
            raise StoppedBySignal(saved, self.trainer.global_step) from stop

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
        parser.add_argument(
            "--allow_config_change",
            type=bool,
            default=False,
            help="fit --ckpt_path: resume the run even though its config differs from the one it was started with.",
        )

    def _parse_ckpt_path(self) -> None:
        """LightningCLI puts a `--ckpt_path` checkpoint's model hyperparameters over the config given; not for `fit`,
        whose resume compares the config given with the checkpoint's (a changed one is refused, not overridden)."""
        if self.config.get("subcommand") != "fit":
            super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        """fp16 falls back to fp32 without CUDA; a fit's checkpoint to resume from is settled (and checked), and
        every checkpoint it writes will record its config."""
        config = self.config.get(self.subcommand, self.config) if self.subcommand else self.config
        self._fall_back_to_fp32(config)
        if self.subcommand == "fit":
            self.resumed = prepare_resume(config)
            callbacks = self.trainer_defaults.get("callbacks", [])
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            self.trainer_defaults = {**self.trainer_defaults, "callbacks": [*callbacks, RunRecord(flat_config(config))]}

    @staticmethod
    def _fall_back_to_fp32(config: Any) -> None:
        """fp16 autocast (the task configs' `16-mixed`, as protocol 2) needs CUDA; elsewhere the run uses fp32."""
        trainer = config.get("trainer")
        if trainer is None or str(trainer.get("precision")) not in HALF_PRECISIONS:
            return
        accelerator = str(trainer.get("accelerator") or "auto")
        if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
            return
        log.info("trainer.precision %s needs a CUDA device; training in fp32 (32-true) here", trainer.get("precision"))
        trainer["precision"] = "32-true"

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The Trainer, its checkpoints written atomically (AtomicCheckpointIO) unless a checkpoint IO is configured."""
        plugins = self._get(self.config_init, "trainer", default={}).get("plugins") or []
        plugins = plugins if isinstance(plugins, list) else [plugins]
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
            plugins = [*plugins, AtomicCheckpointIO()]
        return super().instantiate_trainer(**{"plugins": plugins, **kwargs})

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
        if self.trainer.max_steps > 0 and self.trainer.global_step < self.trainer.max_steps:
            log.info(
                "training stopped at step %d of %d (trainer.max_time or a callback stopped it): cut short, so the "
                "test split is not scored; fit again with --ckpt_path to continue",
                self.trainer.global_step,
                self.trainer.max_steps,
            )
            return
        checkpoint = self.trainer.checkpoint_callback
        best = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else ""
        if not best:
            warnings.warn(
                "no best-validation checkpoint was written (none after checkpoint.select_after of the run, or no "
                "validation: see --trainer.val_check_interval), so the test split is scored from the last weights, "
                "as protocol 2's code does",
                stacklevel=1,
            )
        results = self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None)
        self.test_metrics = dict(results[0]) if results else {}


def run_command(argv: Sequence[str] | None = None) -> int:
    """`fit|validate|test|predict ...` as a command: LRACLI on `argv` (None: the command line).

    Arguments that are the command line itself are left for LightningCLI to read from sys.argv: given as `args`
    as well, it warns that both were given (a guard meant for calls from Python).
    """
    args = None if argv is None or list(argv) == sys.argv[1:] else list(argv)
    words = list(sys.argv[1:] if argv is None else argv)
    subcommand = words[0] if words else "lightning"
    try:
        LRACLI(args=args)
    except ResumeError as error:
        print(f"{subcommand}: {error}", file=sys.stderr)
        return 1
    except StoppedBySignal as stopped:
        print(
            f"{subcommand}: {stopped}. To continue, run the same command with --ckpt_path {stopped.checkpoint} "
            "(or --ckpt_path last)",
            file=sys.stderr,
        )
    return 0
