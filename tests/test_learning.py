"""The whole pipeline really learns: generator -> cache -> DataModule -> model -> Trainer, on tiny ListOps."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import lightning as L
import pytest
import torch

from lra.data import ListOpsDataModule, ListOpsSpec
from lra.module import LRAClassifier


@pytest.mark.parametrize("attention", ["nala", "softmax"])
def test_small_model_beats_the_majority_class_on_shallow_listops(tmp_path: Path, attention: str) -> None:
    L.seed_everything(0)
    # Single operators over 2-3 digits, e.g. `[SM 4 7 9 ]`: short sequences, every answer computable.
    data = ListOpsDataModule(
        num_train=3000, num_val=400, num_test=400, spec=ListOpsSpec(max_depth=2, max_args=3, min_length=1),
        max_length=16, batch_size=64, num_workers=0, cache_dir=str(tmp_path), generate_workers=1,
    )  # fmt: skip
    model = LRAClassifier(
        data.vocab_size, data.num_classes, data.max_length, attention=attention, dropout=0.0, lr=3e-3,
        warmup_steps=20,
    )  # fmt: skip
    trainer = L.Trainer(
        max_steps=400, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, check_val_every_n_epoch=None, val_check_interval=400,
    )  # fmt: skip
    trainer.fit(model, datamodule=data)
    accuracy = trainer.validate(model, datamodule=data, verbose=False)[0]["val/acc"]

    labels = [int(label) for _, label in data.dataset("val")]
    majority = Counter(labels).most_common(1)[0][1] / len(labels)
    assert majority < 0.2
    assert accuracy > majority + 0.4, f"{attention}: val accuracy {accuracy:.3f}, majority class {majority:.3f}"
    assert torch.isfinite(torch.tensor(accuracy))
