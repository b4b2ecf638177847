"""Resuming a run exactly: which checkpoint (`--ckpt_path last` or a path, past unreadable files), the refusal of a
changed config, the run folder its logs continue in, and what each checkpoint records for it (RunRecord).

Lightning restores the weights, optimizer, schedule, loop counters and callbacks. The harness adds the rest of what
the numbers depend on: the data streams (lra.data.base: the training stream's position follows from the step, the
validation stream's is the data module's checkpoint state) and the random number generators (dropout), recorded here.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jsonargparse import Namespace
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch import Callback, LightningModule, Trainer

log = logging.getLogger("lra.training")

RECORD = "lra_run"  # the checkpoint's entry written by RunRecord
# Keys that may change between a run and its resumption: they change neither the data nor the numbers
# (trainer.max_time only says when to stop: a larger time budget continues a cut-short run).
MAY_CHANGE = (
    "config",
    "ckpt_path",
    "weights_only",
    "allow_config_change",
    "test_after_fit",
    "trainer.logger",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.max_time",
    "checkpoint.every_n_train_steps",
    "checkpoint.verbose",
    "data.num_workers",
    "data.cache_dir",
)
CHECKPOINT_GLOB = "*.ckpt"
VERSION_FOLDER = re.compile(r"version_(\d+)")  # a logger's numbered run folders
HPC = re.compile(r"hpc_ckpt_(\d+)\.ckpt")  # Lightning's SLURM requeue checkpoints


class ResumeError(ValueError):
    """A run cannot be resumed as asked (no readable checkpoint, a changed config); the message says what to do."""


@dataclass(frozen=True)
class Resumed:
    """The checkpoint a fit continues from, at `step`, and the folder the run logs in (None: not recorded)."""

    checkpoint: Path
    step: int
    log_dir: Path | None


# What a checkpoint records beyond Lightning's state.


def rng_states() -> dict[str, Any]:
    """The states of torch's (CPU and CUDA), numpy's and Python's global random number generators."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached)),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: Mapping[str, Any]) -> None:
    """Put back the generators' states that `rng_states` took (CUDA's only where both runs have CUDA)."""
    torch.set_rng_state(states["torch"])
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class RunRecord(Callback):
    """Writes into every checkpoint the run's config (to refuse a changed one), its log folder and the random number
    generators' states, and flushes the loggers first so that the logs up to the checkpoint are on disk with it.

    On resuming, the generators are put back just before the first training step, so that the dropout draws continue
    as if the run had not stopped (nothing between the load and that step may draw from them: data loaders have
    their own generators, see lra.data.base).
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = dict(config)
        self._states: Mapping[str, Any] | None = None

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        for logger in trainer.loggers:
            logger.save()
        checkpoint[RECORD] = {"config": self.config, "log_dir": trainer.log_dir, "rng": rng_states()}

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        self._states = checkpoint.get(RECORD, {}).get("rng")

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if self._states is not None:
            set_rng_states(self._states)
            self._states = None


# The config and its changes.


def _plain(value: Any) -> Any:
    """`value` as JSON types (tuples as lists, paths as strings), so that a recorded and a new config compare."""
    return json.loads(json.dumps(value, default=str))


def flat_config(config: Namespace | Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{dotted key: value} of a parsed config, as the command line names keys (`data.batch_size`, no `init_args`),
    without the keys in MAY_CHANGE."""
    items = config.as_dict() if isinstance(config, Namespace) else config
    flat: dict[str, Any] = {}
    for key, value in items.items():
        name = prefix if key == "init_args" else f"{prefix}.{key}" if prefix else key
        if any(name == kept or name.startswith(f"{kept}.") for kept in MAY_CHANGE):
            continue
        if isinstance(value, Mapping) and value:
            flat.update(flat_config(value, name))
        else:
            flat[name] = _plain(value)
    return flat


def _shown(value: Any, missing: bool) -> str:
    text = "(absent)" if missing else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def config_changes(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """`key: old -> new` for every key whose value differs between two flat configs."""
    changes = []
    for key in sorted(set(recorded) | set(current)):
        old, new = recorded.get(key), current.get(key)
        if key not in recorded or key not in current or old != new:
            changes.append(f"{key}: {_shown(old, key not in recorded)} -> {_shown(new, key not in current)}")
    return changes


# Finding the checkpoint.


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at `path`, its tensors memory-mapped (cheap); any error means it cannot be resumed from."""
    return torch.load(path, map_location="cpu", weights_only=False, mmap=True)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def newest_readable(first: Path | None, folder: Path) -> tuple[Path, dict[str, Any]]:
    """`first` if it is a readable full checkpoint, else the newest one in `folder` that is, each skipped with a
    warning naming the file; a ResumeError if none is. Files a killed save left half-written are deleted."""
    for leftover in folder.glob(".*.ckpt.*.tmp"):  # replaced_atomically's temporary files: their writer is gone
        log.info("deleting %s, a checkpoint whose writing was interrupted", leftover)
        leftover.unlink(missing_ok=True)
    others = sorted(
        (path for path in folder.glob(CHECKPOINT_GLOB) if path != first),
        key=lambda path: path.stat().st_mtime_ns,
        reverse=True,
    )
    for path in [first, *others] if first is not None else others:
        try:
            checkpoint = read_checkpoint(path)
        except Exception as error:  # a truncated or overwritten file fails in zip, pickle or torch's reader
            log.warning("%s is not a readable checkpoint (%s); trying the next newest", path, _first_line(error))
            continue
        if "loops" not in checkpoint or "optimizer_states" not in checkpoint:
            log.warning("%s holds weights only, not a training state to resume; trying the next newest", path)
            continue
        if first is not None and path != first:
            log.warning("resuming from %s (step %d) instead of %s", path, checkpoint["global_step"], first)
        return path, checkpoint
    raise ResumeError(f"no readable checkpoint to resume from in {folder}; start a new run by leaving out --ckpt_path")


@dataclass(frozen=True)
class LogFolder:
    """Where a file logger (TensorBoard, CSV) writes: root = save_dir/name; the run in root/version (None: the next
    version_N)."""

    root: Path
    version: str | int | None

    @classmethod
    def of(cls, logger: Any) -> LogFolder | None:
        """The folders of a configured `trainer.logger` (class_path and init_args with save_dir); None otherwise."""
        if not isinstance(logger, Namespace) or not isinstance(logger.get("init_args"), Namespace):
            return None
        args = logger.init_args
        if args.get("save_dir") is None:
            return None
        name = args.get("name")
        return cls(Path(args.save_dir) / name if name else Path(args.save_dir), args.get("version"))

    def run(self) -> Path | None:
        """The fixed run folder (version set), else None."""
        if self.version is None:
            return None
        return self.root / (self.version if isinstance(self.version, str) else f"version_{self.version}")

    def newest_with_checkpoints(self, checkpoints: str) -> Path | None:
        """The run folder (fixed, or the highest version_N) whose `checkpoints` subfolder holds a checkpoint."""
        fixed = self.run()
        if fixed is not None:
            candidates = [fixed]
        else:
            numbered = [
                (int(match.group(1)), path)
                for path in self.root.glob("version_*")
                if (match := VERSION_FOLDER.fullmatch(path.name))
            ]
            candidates = [path for _, path in sorted(numbered, reverse=True)]
        return next((path for path in candidates if any((path / checkpoints).glob(CHECKPOINT_GLOB))), None)


def checkpoint_folder(config: Namespace, logs: LogFolder | None) -> Path | None:
    """The folder `--ckpt_path last` looks in: checkpoint.dirpath, else the newest run folder's checkpoints/."""
    dirpath = config.get("checkpoint", Namespace()).get("dirpath")
    if dirpath is not None:
        folder = Path(dirpath)
        return folder if any(folder.glob(CHECKPOINT_GLOB)) else None
    if logs is None:
        return None
    run = logs.newest_with_checkpoints("checkpoints")
    return None if run is None else run / "checkpoints"


def slurm_checkpoint(config: Namespace) -> str | None:
    """Under SLURM, the newest hpc_ckpt_N.ckpt that Lightning's requeue handler saved in trainer.default_root_dir."""
    if not SLURMEnvironment.detect():
        return None
    root = Path(config.trainer.get("default_root_dir") or ".")
    numbered = [(int(match[1]), path) for path in root.glob("hpc_ckpt_*.ckpt") if (match := HPC.fullmatch(path.name))]
    return str(max(numbered)[1]) if numbered else None


def prepare_resume(config: Namespace) -> Resumed | None:
    """Settle a `fit` config's `--ckpt_path` before anything is built: the checkpoint (readable, config unchanged
    unless `allow_config_change`), and the logger continuing in the run's folder from the checkpoint's step.

    `last`: the newest run folder's last.ckpt (a new run if there is none). A path: that file. None: under SLURM,
    the newest hpc_ckpt_N.ckpt of Lightning's requeue, if any. An unreadable file falls back to the newest readable
    checkpoint beside it. `best`, `hpc`: Lightning's, unchanged.
    """
    requested = config.get("ckpt_path")
    logs = LogFolder.of(config.trainer.get("logger"))
    if requested is None:
        requested = slurm_checkpoint(config)  # a requeued SLURM job, as Lightning resumes it ("hpc")
    if requested is None or requested in ("best", "hpc"):
        return None
    if requested == "last":
        folder = checkpoint_folder(config, logs)
        if folder is None:
            _start_afresh(config, logs)
            return None
        last = folder / "last.ckpt"
        path, checkpoint = newest_readable(last if last.is_file() else None, folder)
    else:
        given = Path(requested)
        if not given.is_file():
            raise ResumeError(f"--ckpt_path {requested}: no such checkpoint file")
        path, checkpoint = newest_readable(given, given.parent)
    record = checkpoint.get(RECORD, {})
    _check_unchanged(config, record.get("config"), path)
    step = int(checkpoint["global_step"])
    recorded_dir = record.get("log_dir") or (path.parent.parent if path.parent.name == "checkpoints" else None)
    log_dir = None if recorded_dir is None else Path(recorded_dir)
    _continue_logs(config, logs, log_dir, step)
    config.ckpt_path = str(path)
    log.info("resuming %s from step %d (%s)", log_dir or "the run", step, path)
    return Resumed(path, step, log_dir)


def _check_unchanged(config: Namespace, recorded: Mapping[str, Any] | None, path: Path) -> None:
    if recorded is None:
        log.warning("%s records no config (an older harness): resuming without checking that it is unchanged", path)
        return
    changes = config_changes(recorded, flat_config(config))
    if not changes:
        return
    if config.get("allow_config_change"):
        log.warning("resuming %s with a changed config (--allow_config_change): %s", path, "; ".join(changes))
        return
    raise ResumeError(
        f"{path}: the config differs from the run being resumed in {len(changes)} key(s): {'; '.join(changes)}. "
        "To continue that run with these values pass --allow_config_change true; to start a new run instead, "
        "leave out --ckpt_path (a new run folder) or give the run another folder"
    )


def _start_afresh(config: Namespace, logs: LogFolder | None) -> None:
    """`--ckpt_path last` with nothing to resume: a new run; in a fixed run folder, TensorBoard drops the events an
    earlier attempt left there (one that stopped before its first checkpoint)."""
    where = (logs.run() or logs.root) if logs is not None else "the configured folders"
    log.info("--ckpt_path last: no checkpoint under %s; starting a new run", where)
    config.ckpt_path = None
    run = logs.run() if logs is not None else None
    if run is not None and any(run.glob("events.out.tfevents.*")) and "purge_step" in config.trainer.logger.init_args:
        config.trainer.logger.init_args.purge_step = 0


def _purge_from(args: Namespace, step: int) -> None:
    """TensorBoard drops the folder's earlier events at `step` and later (SummaryWriter's purge_step); the logger
    writes no second hp_metric (Lightning's placeholder, at step 0)."""
    if "purge_step" in args:
        args.purge_step = step
    if "default_hp_metric" in args:
        args.default_hp_metric = False


def _continue_logs(config: Namespace, logs: LogFolder | None, log_dir: Path | None, step: int) -> None:
    """Log into the run's own folder from `step` on, where the logger's version is not fixed; else say where the
    earlier part of the run is."""
    if logs is None:
        return
    args = config.trainer.logger.init_args
    if logs.version is None and log_dir is not None and log_dir.parent.resolve() == logs.root.resolve():
        args.version = log_dir.name
    elif log_dir is not None and (logs.run() or logs.root).resolve() != log_dir.resolve():
        log.info("resumed in a new folder under %s; up to step %d the run logged in %s", logs.root, step, log_dir)
    _purge_from(args, step)
