"""Every registered attention trains inside the real model and Trainer; hybrid per-layer lists load from YAML."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lra.attention import ATTENTIONS
from lra.data.base import Collate
from lra.module import LRAClassifier
from lra.training.lightning_cli import LRACLI

REPO = Path(__file__).resolve().parents[2]
VOCAB, CLASSES, MAX_LENGTH = 12, 3, 32
LENGTHS = [32, 20, 7, 1, 25, 3, 32, 12]  # two batches of 4, each padded to its longest


def tiny_loader(seed: int = 0) -> DataLoader:
    """In-memory (tokens, label) examples through the real collate: tokens, mask (with padding), label."""
    rng = np.random.default_rng(seed)
    examples = [(rng.integers(1, VOCAB, size=n).astype(np.int64), int(rng.integers(CLASSES))) for n in LENGTHS]
    return DataLoader(examples, batch_size=4, shuffle=False, collate_fn=Collate())


class RecordLosses(L.Callback):
    def __init__(self) -> None:
        self.losses: list[torch.Tensor] = []

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        self.losses.append(outputs["loss"].detach())


# Two user classes by import path: a kernel attention, and a module that is not an lra Attention subclass.
USER = ["helpers.attentions:TemperedLinear", "helpers.attentions:Plain"]


@pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")
@pytest.mark.parametrize("name", sorted(ATTENTIONS) + USER)
def test_attention_trains_through_a_lightning_step(name: str, tmp_path: Path) -> None:
    L.seed_everything(0)
    model = LRAClassifier(
        VOCAB, CLASSES, MAX_LENGTH, attention=name, depth=1, dim=16, heads=2, ffn_dim=32, dropout=0.0,
        lr=1e-2, warmup_steps=0,
    )  # fmt: skip
    before = {pname: p.detach().clone() for pname, p in model.named_parameters()}
    attention = {pname for pname in before if ".attention." in pname}
    assert attention, "the attention layer has no parameters to train"
    record = RecordLosses()
    trainer = L.Trainer(
        max_steps=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, log_every_n_steps=1,
        callbacks=[record], default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, train_dataloaders=tiny_loader())
    assert trainer.global_step == 2
    assert len(record.losses) == 2 and all(torch.isfinite(loss) for loss in record.losses)
    after = dict(model.named_parameters())
    unchanged = sorted(pname for pname in attention if torch.equal(after[pname], before[pname]))
    assert not unchanged, f"{name}: attention parameters not updated by the optimiser: {unchanged}"
    assert all(torch.isfinite(p).all() for p in after.values())


HYBRIDS = {
    # attention_kwargs reach only the layers whose attention accepts them.
    "nystrom-softmax": (
        "[nystrom, softmax]",
        "{num_landmarks: 8, pinv_iterations: 4}",
        {0: {"num_landmarks": 8, "pinv_iterations": 4}},
    ),
    "performer-nala": ("[performer, nala]", "{alpha: 2.0}", {1: {"alpha": 2.0}}),
}


@pytest.mark.parametrize(("layers", "kwargs", "expected"), HYBRIDS.values(), ids=HYBRIDS.keys())
def test_hybrid_per_layer_attention_from_yaml(
    layers: str, kwargs: str, expected: dict[int, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["lightning"])  # the CLI reads only `args`
    overlay = tmp_path / "hybrid.yaml"
    lines = [f"attention: {layers}", f"attention_kwargs: {kwargs}", "depth: 2", "dim: 16", "heads: 2", "ffn_dim: 32"]
    overlay.write_text("model:\n" + "".join(f"  {line}\n" for line in lines))
    config = str(REPO / "tasks" / "listops.yaml")
    cli = LRACLI(args=["--config", config, "--config", str(overlay), "--trainer.logger", "false"], run=False)
    names = [name.strip() for name in layers.strip("[]").split(",")]
    assert cli.model.hparams.attention == names
    blocks = cli.model.model.encoder.blocks
    assert [type(block.attention) for block in blocks] == [ATTENTIONS[name] for name in names]
    for layer, values in expected.items():
        for key, value in values.items():
            assert getattr(blocks[layer].attention, key) == value
    # The loaded model runs: one forward and backward pass on a padded batch.
    batch = next(iter(tiny_loader()))
    logits = cli.model(batch)
    assert logits.shape == (4, cli.model.hparams.num_classes) and torch.isfinite(logits).all()
    cli.model.loss(logits, batch["label"] % cli.model.hparams.num_classes).backward()


def test_a_users_attention_by_import_path_on_the_command_line_and_in_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers.attentions import TemperedLinear

    monkeypatch.setattr(sys, "argv", ["lightning"])  # the CLI reads only `args`
    config = str(REPO / "tasks" / "listops.yaml")
    tiny = ["--model.depth", "2", "--model.dim", "16", "--trainer.logger", "false"]
    flags = ["--model.attention", USER[0], "--model.attention_kwargs", "{temperature: 2.0}"]
    cli = LRACLI(args=["--config", config, *tiny, *flags], run=False)
    assert cli.model.hparams.attention == USER[0]
    assert all(type(block.attention) is TemperedLinear for block in cli.model.model.encoder.blocks)
    assert cli.model.model.encoder.blocks[0].attention.feature_q.temperature == 2.0
    overlay = tmp_path / "hybrid.yaml"
    lines = [f"  attention: [nala, {USER[0]}]", "  attention_kwargs: {alpha: 2.0, temperature: 0.5}"]
    overlay.write_text("model:\n" + "".join(f"{line}\n" for line in lines))
    cli = LRACLI(args=["--config", config, "--config", str(overlay), *tiny], run=False)
    first, second = (block.attention for block in cli.model.model.encoder.blocks)
    assert type(first) is ATTENTIONS["nala"] and first.alpha == 2.0
    assert type(second) is TemperedLinear and second.feature_q.temperature == 0.5
