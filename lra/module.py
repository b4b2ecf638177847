"""The LightningModule: an LRA classifier with AdamW, linear warm-up then linear decay, and accuracy metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy

from lra.model import Encoder, LRAModel, Pooling, Position

STAGES = ("train", "val", "test")


def warmup_then_linear_decay(step: int, warmup_steps: int, total_steps: int) -> float:
    """LR multiplier: rises linearly to 1 over `warmup_steps`, then falls linearly to 0 at `total_steps`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


class LRAClassifier(L.LightningModule):
    """Classifies LRA sequences (or sequence pairs) with a configurable attention encoder.

    vocab_size, num_classes, max_length and two_tower come from the DataModule (linked by the CLI).
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        max_length: int,
        two_tower: bool = False,
        attention: str | list[str] = "nala",
        attention_kwargs: dict[str, Any] | None = None,
        depth: int = 2,
        dim: int = 64,
        heads: int = 2,
        ffn_dim: int = 128,
        dropout: float = 0.1,
        pooling: Pooling = "mean",
        position: Position = "learned",
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
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
        )
        self.model = LRAModel(encoder, dim, ffn_dim, num_classes, two_tower)
        self.loss = nn.CrossEntropyLoss()
        self.accuracy = nn.ModuleDict(  # keys get a suffix: "train" would clash with nn.Module.train
            {f"{stage}_acc": MulticlassAccuracy(num_classes, average="micro") for stage in STAGES}
        )
        self.best_val_accuracy = MaxMetric()

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

    def configure_optimizers(self) -> dict[str, Any]:
        hparams = self.hparams
        optimizer = torch.optim.AdamW(
            self.parameters(), lr=hparams.lr, betas=tuple(hparams.betas), weight_decay=hparams.weight_decay
        )
        total_steps = int(self.trainer.estimated_stepping_batches)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_then_linear_decay(step, hparams.warmup_steps, total_steps)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
