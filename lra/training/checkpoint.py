"""The checkpoints of a run: the best-validation one as protocol 2's code chooses it (not before a fraction of the
run), and `last.ckpt` to resume from, written every N steps, at each validation, at the end and on SIGTERM; each
file is written atomically."""

from __future__ import annotations

import functools
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lra.files import replaced_atomically

log = logging.getLogger("lra.training")
EVERY_N_TRAIN_STEPS = 100  # the default: a few seconds of training on a GPU, lost at most by a hard kill
REQUEUE_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)  # SLURMEnvironment's requeue_signal is one of these


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, writing each local file whole or not at all (`replaced_atomically`).

    Lightning's own save goes through an fsspec transaction whose temporary file lives in the system's temp folder,
    so where that is another file system the final step is a copy, and a kill during it truncates the checkpoint.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):  # remote storage: Lightning's own transaction
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        with replaced_atomically(Path(path)) as file:
            torch.save(checkpoint, file)


class StoppedBySignal(SIGTERMException):
    """Training stopped after SIGTERM (or SLURM's requeue signal) at the end of `step`, saved in `checkpoint`.

    A SystemExit with status 0, as Lightning's SIGTERMException, for a command that does not catch it.
    """

    def __init__(self, checkpoint: str, step: int) -> None:
        super().__init__(0)
        self.checkpoint = checkpoint
        self.step = step

    def __str__(self) -> str:
        saved = f"its state is saved in {self.checkpoint}" if self.checkpoint else "no checkpoint was written"
        return f"stopped by SIGTERM at step {self.step}; {saved}"


def validation_follows(trainer: Trainer) -> bool:
    """Whether Lightning validates right after the training batch that just ended (its own rule, as its loop asks)."""
    loop = trainer.fit_loop.epoch_loop
    return loop._should_check_val_fx(trainer.fit_loop._data_fetcher)


def at_optimizer_step(trainer: Trainer) -> bool:
    """Whether the training batch that just ended stepped the optimizer (not in the middle of gradient accumulation)."""
    return not trainer.fit_loop.epoch_loop._should_accumulate()


class SelectionCheckpoint(ModelCheckpoint):
    """The run's checkpoints: the best-validation one, chosen as protocol 2's code does, and `last.ckpt` to resume from.

    Best: as the reference code (Skyformer's `main.py`), every validation updates the best score, but a checkpoint is
    written only after `select_after` of `trainer.max_steps`, and then only when it beats every earlier validation,
    the early ones included. If none is ever written, the test split is scored from the last weights.

    Last (with `save_last`): written at every validation, every `every_n_train_steps` optimizer steps (None: only at
    validations) and at the end of training, so a killed run loses at most that many steps. A step followed by a
    validation is saved after it, never before: Lightning resumes such a checkpoint past the validation.

    Signals: Lightning's handlers act at once, wherever training is; here they wait for the next savable point (the
    end of a step, after its validation if one is due), where last.ckpt is written first. So SIGTERM (what clusters
    send before preemption) saves there and Lightning stops at the end of that step (LRACLI reports it as
    StoppedBySignal); on SLURM, Lightning's requeue signal (`--signal=SIGUSR1@90`) saves there, then Lightning
    writes its hpc_ckpt_N.ckpt and runs `scontrol requeue`, and the run stops the same way.
    Lightning's other `ModelCheckpoint` arguments are as documented there.
    """

    def __init__(
        self,
        *args: Any,
        select_after: float = 0.2,
        every_n_train_steps: int | None = EVERY_N_TRAIN_STEPS,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)  # without every_n_train_steps: the best is chosen at each validation
        if not 0.0 <= select_after < 1.0:
            raise ValueError(f"checkpoint.select_after must be a fraction of the run in [0, 1), got {select_after}")
        if every_n_train_steps is not None and every_n_train_steps < 1:
            raise ValueError(f"checkpoint.every_n_train_steps must be >= 1 or null, got {every_n_train_steps}")
        self.select_after = select_after
        self.every_n_train_steps = every_n_train_steps
        self.early_best: float | None = None  # the best score seen before selection began
        self._handlers: dict[int, Callable[[int, FrameType | None], object]] = {}  # Lightning's, by signal
        self._deferred: list[Callable[[], object]] = []  # signals received, their handlers waiting for a savable point

    def selection_starts_after(self, trainer: Trainer) -> int:
        """The step count after which a best checkpoint may be written (0 for a run without max_steps)."""
        return int(self.select_after * trainer.max_steps) if trainer.max_steps > 0 else 0

    def _save_topk_checkpoint(self, trainer: Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
        current = monitor_candidates.get(self.monitor) if self.monitor is not None else None
        if current is None:
            super()._save_topk_checkpoint(trainer, monitor_candidates)
            return
        value = float(current)
        better = (lambda a, b: a > b) if self.mode == "max" else (lambda a, b: a < b)
        if trainer.global_step <= self.selection_starts_after(trainer):
            if self.early_best is None or better(value, self.early_best):
                self.early_best = value
            return
        if self.early_best is not None and not better(value, self.early_best):
            return
        super()._save_topk_checkpoint(trainer, monitor_candidates)

    # last.ckpt and signals

    def write_last(self, trainer: Trainer) -> None:
        """Write last.ckpt now, unless this step is saved already (or nothing is to be saved: not fitting, ...)."""
        if not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _at_savable_point(self, trainer: Trainer) -> None:
        """Write last.ckpt, then run the signal handlers that waited for this point (a SIGTERM that Lightning's own
        handler took before training began shows as trainer.received_sigterm: Lightning stops after this step)."""
        if not self._deferred and not trainer.received_sigterm:
            return
        self.write_last(trainer)
        handlers, self._deferred = self._deferred, []
        for handler in handlers:
            handler()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Defer Lightning's handlers of SIGTERM and (under SLURM with auto-requeue) of the requeue signal to the next
        savable point. Lightning puts the handlers from before training back when it ends (its signal connector)."""
        super().on_train_start(trainer, pl_module)
        self._deferred = []
        if threading.current_thread() is not threading.main_thread():
            return
        handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, *REQUEUE_SIGNALS)}
        self._handlers = {signum: handler for signum, handler in handlers.items() if callable(handler)}
        for signum in self._handlers:  # Lightning's: SIGTERM always, SLURMEnvironment.requeue_signal under SLURM
            signal.signal(signum, self._defer)

    def _defer(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        log.info("received %s: saving at the end of this step (after its validation, if one is due)", name)
        self._deferred.append(functools.partial(self._handlers[signum], signum, frame))
        if signum != signal.SIGTERM and signal.SIGTERM in self._handlers:  # the requeued job continues the run:
            self._deferred.append(functools.partial(self._handlers[signal.SIGTERM], signal.SIGTERM, frame))  # stop

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if not at_optimizer_step(trainer) or validation_follows(trainer):
            return  # the validation's end saves this step
        if self.every_n_train_steps and trainer.global_step % self.every_n_train_steps == 0:
            self.write_last(trainer)
        self._at_savable_point(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)  # the best (top-k) and, after a new best, last
        if trainer.sanity_checking:
            return
        self.write_last(trainer)
        self._at_savable_point(trainer)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.write_last(trainer)  # the final step, also where no validation or N-th step fell on it

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "early_best": self.early_best}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.early_best = state_dict.get("early_best")
