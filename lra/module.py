"""The LightningModule: an LRA classifier with AdamW under a one-cycle schedule, and accuracy metrics."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import OneCycleLR
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy

from lra.model import Encoder, LRAModel, Pooling, Position
from lra.protocol import Protocol

STAGES = ("train", "val", "test")
log = logging.getLogger("lra.module")


def one_cycle(optimizer: torch.optim.Optimizer, lr: float, warmup_steps: int, total_steps: int) -> OneCycleLR:
    """Protocol 2's schedule: `OneCycleLR` with linear annealing and warm-up over `warmup_steps` of `total_steps`.

    Its defaults are kept, as the reference code keeps them: it starts at lr/25, peaks at lr after the warm-up,
    ends at lr/2.5e5, and cycles Adam's β1 from 0.95 down to 0.85 at the peak and back. A warm-up as long as
    the run (a short trial of a long config) is cut to end at the last step. A warm-up of one step is none (the
    first step runs at lr): OneCycleLR's warm-up phase needs two steps, its start and its peak.
    """
    warmup = min(warmup_steps, total_steps - 1)
    warmup = warmup if warmup >= 2 else 0
    if warmup_steps >= total_steps:
        log.warning(
            "model.warmup_steps %d >= the run's %d steps: warming up over %d", warmup_steps, total_steps, warmup
        )
    if warmup < 2:
        warmup = 0
    return OneCycleLR(
        optimizer, max_lr=lr, total_steps=total_steps, pct_start=warmup / total_steps, anneal_strategy="linear"
    )


class LRAClassifier(L.LightningModule):
    """Classifies LRA sequences (or sequence pairs) with a configurable attention encoder.

    vocab_size, num_classes, max_length, two_tower and protocol come from the DataModule (linked by the CLI).
    Optimisation is protocol 2's: AdamW (eps 1e-6) under `one_cycle`; gradient clipping and precision are the
    Trainer's (`gradient_clip_val`, `gradient_clip_algorithm`, `precision` in the task configs).
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        max_length: int,
        two_tower: bool = False,
        protocol: Protocol = "faithful",
        attention: str | list[str] = "nala",
        attention_kwargs: dict[str, Any] | None = None,
        depth: int = 2,
        dim: int = 64,
        heads: int = 2,
        ffn_dim: int = 128,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        pooling: Pooling = "mean",
        position: Position = "learned",
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        warmup_steps: int = 1000,
    ) -> None:
        super().__init__()
        if lr <= 0:
            raise ValueError(f"model.lr must be > 0, got {lr}")
        if warmup_steps < 0:
            raise ValueError(f"model.warmup_steps must be >= 0, got {warmup_steps}")
        self.save_hyperparameters()
        encoder = Encoder(
            vocab_size,
            max_length,
            attention,
            attention_kwargs or {},
            depth,
            dim,
            heads,
            ffn_dim,
            dropout,
            pooling,
            position,
            attention_dropout,
            protocol,
        )
        self.model = LRAModel(encoder, dim, ffn_dim, num_classes, two_tower)
        self.loss = nn.CrossEntropyLoss()
        self.accuracy = nn.ModuleDict(  # keys get a suffix: "train" would clash with nn.Module.train
            {f"{stage}_acc": MulticlassAccuracy(num_classes, average="micro") for stage in STAGES}
        )
        self.best_val_accuracy = MaxMetric()
        self.best_val_accuracy.persistent(True)  # kept in checkpoints: a resumed run's val/acc_best goes on from it

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        return self.model(batch)

    def _step(self, batch: Mapping[str, Tensor], stage: str) -> Tensor:
        logits = self(batch)  # (B, C)
        loss = self.loss(logits, batch["label"])
        accuracy = self.accuracy[f"{stage}_acc"]
        accuracy(logits, batch["label"])
        on_step = stage == "train"
        batch_size = batch["label"].shape[0]
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=not on_step, batch_size=batch_size, prog_bar=True)
        self.log(
            f"{stage}/acc",
            accuracy,
            on_step=on_step,
            on_epoch=not on_step,
            batch_size=batch_size,
            prog_bar=True,
        )
        return loss

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self.best_val_accuracy(self.accuracy["val_acc"].compute())
        self.log("val/acc_best", self.best_val_accuracy.compute())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints written before val/acc_best was kept in them load with it unset (as a new run starts)."""
        for name, value in self.best_val_accuracy.state_dict(prefix="best_val_accuracy.").items():
            checkpoint["state_dict"].setdefault(name, value)

    def configure_optimizers(self) -> dict[str, Any]:
        hparams = self.hparams
        optimizer = torch.optim.AdamW(
            self.parameters(),
            lr=hparams.lr,
            betas=tuple(hparams.betas),
            eps=hparams.eps,
            weight_decay=hparams.weight_decay,
        )
        schedule = one_cycle(optimizer, hparams.lr, hparams.warmup_steps, int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
