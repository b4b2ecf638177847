"""The best-validation checkpoint as protocol 2's code chooses it: not before a fraction of the run."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint


class SelectionCheckpoint(ModelCheckpoint):
    """`ModelCheckpoint` that keeps a best checkpoint only once `select_after` of `trainer.max_steps` have run.

    As the reference code (Skyformer's `main.py`): every validation updates the best score, but a checkpoint
    is written only after 20% of the steps, and then only when it beats every earlier validation, the early
    ones included. If none is ever written, the test split is scored from the last weights.
    """

    def __init__(self, *args: Any, select_after: float = 0.2, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not 0.0 <= select_after < 1.0:
            raise ValueError(f"checkpoint.select_after must be a fraction of the run in [0, 1), got {select_after}")
        self.select_after = select_after
        self.early_best: float | None = None  # the best score seen before selection began

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

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "early_best": self.early_best}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.early_best = state_dict.get("early_best")
