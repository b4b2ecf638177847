"""One task config's training run from a mapping, in-process (fit_task), and the check made before any training
(check_config): what the suite and every sweep trial call."""

from __future__ import annotations

import argparse
import contextlib
import logging
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import Namespace
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from lra.overrides import ConfigError, apply_overrides
from lra.training.lightning_cli import LRACLI


@dataclass
class TaskRun:
    """What one run of a task config (`task`: its name) produced: accuracies are fractions in [0, 1]; test_acc is
    None when not scored."""

    task: str
    best_val_acc: float
    test_acc: float | None
    best_checkpoint: str
    log_dir: str
    steps: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def with_log_dir(config: Mapping[str, Any], log_dir: Path) -> dict[str, Any]:
    """`config` logging to TensorBoard in exactly `log_dir` (no version_N), checkpoints in log_dir/checkpoints."""
    logger = {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": str(log_dir.parent), "name": log_dir.name, "version": ""},
    }
    return apply_overrides(config, {"trainer.logger": logger}, "log_dir")


def _args(config: Mapping[str, Any]) -> list[str]:
    return [f"--config={yaml.safe_dump(dict(config), sort_keys=False)}"]


def _cli(args: list[str], **kwargs: Any) -> LRACLI:
    """LRACLI on `args`; its warning that the calling command's own sys.argv is ignored is expected here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        return LRACLI(args=args, **kwargs)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's INFO lines (seed, devices, tips) and the CLI's own left out while configs are only being checked."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric", "lra.training")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def check_config(config: Mapping[str, Any], source: str) -> None:
    """Parse and instantiate `config` (model, data, trainer) and find its data files, without training or generating.

    Any problem is a ConfigError naming `source`: unknown keys, bad values, a data.root with no data in it.
    """
    quiet = apply_overrides(config, {"trainer.logger": False}, source)
    try:
        with quiet_lightning():
            cli = _cli(_args(quiet), run=False, parser_kwargs={"exit_on_error": False})
            cli.datamodule.cache_path  # noqa: B018 (finding the files is the check: the cache name fingerprints them)
    except (argparse.ArgumentError, ValueError, TypeError, FileNotFoundError) as error:
        raise ConfigError(f"{source}: {error}") from error
    unknown = next(_unknown_empty_keys(quiet, cli.config), None)
    if unknown is not None:
        group, _, key = unknown.replace(".init_args.", ".").rpartition(".")
        raise ConfigError(f"{source}: Group {group!r} does not accept option {key!r}")


def _unknown_empty_keys(config: Mapping[str, Any], parsed: Namespace, prefix: str = "") -> Iterator[str]:
    """Dotted keys of `config` set to an empty mapping that the parser does not know: jsonargparse reads such a key
    as a group with nothing in it and drops it silently (a typo like `model.atention_kwargs: {}`)."""
    for key, value in config.items():
        path = f"{prefix}{key}"
        if path not in parsed:
            if value == {}:
                yield path
        elif isinstance(value, Mapping) and isinstance(parsed.get(path), Namespace):
            yield from _unknown_empty_keys(value, parsed, f"{path}.")


def fit_task(
    task: str,
    config: Mapping[str, Any],
    log_dir: Path,
    *,
    test: bool,
    callbacks: Sequence[Callback] = (),
    resume: bool = True,
) -> TaskRun:
    """Fit `config` logging into `log_dir`; with `test`, score the test split from the best-validation checkpoint.

    With `resume`, a run that stopped part-way continues exactly from its newest readable checkpoint in
    log_dir/checkpoints (last.ckpt), as `fit --ckpt_path last` does; a changed config is a ResumeError.
    """
    args = _args(with_log_dir(config, log_dir))
    if resume:
        args.append("--ckpt_path=last")
    start = time.perf_counter()
    cli = _cli(["fit", *args, f"--test_after_fit={str(test).lower()}"], trainer_defaults={"callbacks": list(callbacks)})
    checkpoint = cli.trainer.checkpoint_callback
    best_score = checkpoint.best_model_score if isinstance(checkpoint, ModelCheckpoint) else None
    if best_score is None:  # no checkpoint after checkpoint.select_after: the best validation all the same
        best_score = cli.trainer.callback_metrics.get("val/acc_best")
    if best_score is None:
        raise RuntimeError(f"{task}: training ended without a validation score (see trainer.val_check_interval)")
    test_acc = cli.test_metrics.get("test/acc") if test else None
    return TaskRun(
        task=task,
        best_val_acc=float(best_score),
        test_acc=None if test_acc is None else float(test_acc),
        best_checkpoint=checkpoint.best_model_path,
        log_dir=str(log_dir),
        steps=cli.trainer.global_step,
        seconds=round(time.perf_counter() - start, 1),
    )
