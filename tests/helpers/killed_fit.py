"""`python -m helpers.killed_fit SIGNAL WHEN STEP fit ...`: `lightning fit ...` that sends itself SIGNAL (KILL or
TERM) at an exact point of step STEP.

WHEN: `train` (after the optimizer step, before anything saves it), `after` (before the next training step: any
checkpoint of STEP is written) or `validation` (after the first batch of the validation at STEP). The callback is a
Trainer default, so the run's config (what a resumed run is compared with) is the plain command's.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from lightning.pytorch import Callback, Trainer

from lra.logs import show_harness_logs
from lra.training.lightning_cli import run_command

WHEN = ("train", "after", "validation")


class SignalAt(Callback):
    """Sends `signum` to this process at `when` of step `step`, once."""

    def __init__(self, signum: signal.Signals, when: str, step: int) -> None:
        if when not in WHEN:
            raise ValueError(f"WHEN must be one of {', '.join(WHEN)}, got {when!r}")
        self.signum, self.when, self.step = signum, when, step
        self.sent = False

    def send(self, trainer: Trainer, when: str) -> None:
        if when == self.when and trainer.global_step == self.step and not self.sent and not trainer.sanity_checking:
            self.sent = True
            os.kill(os.getpid(), self.signum)

    def on_train_batch_end(self, trainer: Trainer, *args: Any) -> None:
        self.send(trainer, "train")

    def on_train_batch_start(self, trainer: Trainer, *args: Any) -> None:
        self.send(trainer, "after")

    def on_validation_batch_end(self, trainer: Trainer, *args: Any) -> None:
        self.send(trainer, "validation")


def main() -> int:
    name, when, step, *command = sys.argv[1:]
    sys.argv = [sys.argv[0], *command]  # LightningCLI reads the command line itself
    show_harness_logs()
    callback = SignalAt(signal.Signals[f"SIG{name}"], when, int(step))
    import lra.training.lightning_cli as lightning_cli

    class Signalled(lightning_cli.LRACLI):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs, trainer_defaults={"callbacks": [callback]})

    lightning_cli.LRACLI = Signalled  # run_command (its messages, its exit status) on the CLI with the callback
    return run_command(command)


if __name__ == "__main__":
    sys.exit(main())
