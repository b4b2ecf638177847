"""The whole pipeline really learns: generator -> cache -> DataModule -> model, on tiny ListOps and Pathfinder."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn

from lra.data import ListOpsDataModule, ListOpsSpec, PathfinderDataModule
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


def test_a_small_cnn_learns_generated_pathfinder_so_labels_and_images_agree(tmp_path: Path) -> None:
    """Generated pathfinder32 at the easiest level, read through the DataModule: well above chance in 4 epochs."""
    torch.manual_seed(0)
    data = PathfinderDataModule(
        resolution=32,
        difficulty=6,
        num_images=5000,
        batch_size=64,
        protocol="clean",  # black pixels stay real tokens: the CNN sees whole images
        num_workers=0,
        cache_dir=str(tmp_path),
        workers=2,
    )
    data.prepare_data()
    data.setup()

    def block(inputs: int, dilation: int) -> list[nn.Module]:
        return [nn.Conv2d(inputs, 24, 3, padding=dilation, dilation=dilation), nn.BatchNorm2d(24), nn.ReLU()]

    # Dilated convolutions see the whole 32 x 32 image, so they can follow a curve from marker to marker.
    cnn = nn.Sequential(
        *block(1, 1), *block(24, 1), *block(24, 2), *block(24, 4), *block(24, 8), *block(24, 1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 2),
    )  # fmt: skip
    optimizer = torch.optim.Adam(cnn.parameters(), lr=2e-3)

    def images(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        assert batch["mask"].all()  # image tasks have no padding
        return batch["tokens"].view(-1, 1, 32, 32).float() / 255  # (B, 1, 32, 32)

    cnn.train()
    four_epochs = 4 * math.ceil(len(data.dataset("train")) / 64)  # the training stream is endless
    for batch in itertools.islice(data.train_dataloader(), four_epochs):
        loss = nn.functional.cross_entropy(cnn(images(batch)), batch["label"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    cnn.eval()
    with torch.no_grad():
        hits = [(cnn(images(batch)).argmax(1) == batch["label"]) for batch in data.val_dataloader()]
    accuracy = torch.cat(hits).float().mean().item()
    assert len(data.dataset("val")) == 500
    assert accuracy > 0.65, f"val accuracy {accuracy:.3f} on a balanced binary task"
