"""Protocol 2's training recipe as the harness wires it: the schedule, the checkpoint choice, clipping, precision."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch.optim.lr_scheduler import OneCycleLR

from lra.module import one_cycle
from lra.training.checkpoint import SelectionCheckpoint
from lra.training.lightning_cli import LRACLI

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--data.num_train=64",
    "--data.num_val=32",
    "--data.num_test=32",
    "--data.spec.max_depth=2",
    "--data.spec.min_length=5",
    "--data.spec.max_length=24",
    "--data.max_length=32",
    "--data.batch_size=16",
    "--data.eval_batches=1",
    "--model.dim=16",
    "--model.ffn_dim=32",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]


class RecordOptimiser(L.Callback):
    """The learning rate and Adam's β1 in force at each training step."""

    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.beta1s: list[float] = []

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        group = trainer.optimizers[0].param_groups[0]
        self.lrs.append(group["lr"])
        self.beta1s.append(group["betas"][0])


def reference_one_cycle(lr: float, warmup: int, total: int) -> tuple[list[float], list[float]]:
    """The reference code's schedule on a lone parameter: OneCycleLR(max_lr, pct_start=warmup/total, linear)."""
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr, eps=1e-6)
    schedule = OneCycleLR(optimizer, max_lr=lr, pct_start=warmup / total, anneal_strategy="linear", total_steps=total)
    lrs, beta1s = [], []
    for _ in range(total):
        lrs.append(optimizer.param_groups[0]["lr"])
        beta1s.append(optimizer.param_groups[0]["betas"][0])
        optimizer.step()
        schedule.step()
    return lrs, beta1s


@pytest.mark.parametrize("warmup", [0, 1])
def test_a_warm_up_shorter_than_two_steps_is_none(warmup: int) -> None:
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.01, eps=1e-6)
    schedule = one_cycle(optimizer, 0.01, warmup, 6)
    lrs = []
    for _ in range(6):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    # pct_start 0: the first step is already past the peak (lr), then linear annealing to lr/25/1e4 at the last.
    assert lrs == pytest.approx([0.01 - k * (0.01 - 0.01 / 25 / 1e4) / 6 for k in range(1, 7)], rel=1e-9)


def test_the_schedule_is_one_cycle_with_beta1_cycling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    record = RecordOptimiser()
    cli = LRACLI(
        args=[
            "fit",
            f"--config={REPO / 'tasks' / 'listops.yaml'}",
            *TINY,
            "--trainer.max_steps=20",
            "--trainer.val_check_interval=10",
            "--model.warmup_steps=5",
            "--model.lr=0.01",
            "--test_after_fit=false",
        ],
        trainer_defaults={"callbacks": [record]},
    )
    lrs, beta1s = reference_one_cycle(0.01, 5, 20)
    assert record.lrs == pytest.approx(lrs, rel=1e-9) and record.beta1s == pytest.approx(beta1s, rel=1e-9)
    # Hand values: lr/25 at the start, lr at the end of warm-up (β1 at 0.85 there), lr/25/1e4 at the last step.
    assert record.lrs[0] == pytest.approx(0.0004) and max(record.lrs) == pytest.approx(0.01)
    assert record.beta1s[0] == pytest.approx(0.95) and min(record.beta1s) == pytest.approx(0.85)
    assert record.lrs.index(max(record.lrs)) == 4
    optimizer = cli.trainer.optimizers[0]
    assert optimizer.defaults["eps"] == 1e-6
    assert cli.trainer.gradient_clip_val == 1.0 and cli.trainer.gradient_clip_algorithm == "value"
    assert cli.trainer.precision == "32-true"  # the config's 16-mixed needs CUDA


def test_a_warmup_longer_than_the_run_ends_at_the_last_step() -> None:
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = one_cycle(optimizer, 1.0, warmup_steps=1000, total_steps=10)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    # OneCycleLR peaks after pct_start * total steps; the warm-up is cut to total - 1 (its last phase needs a step).
    assert lrs[:9] == sorted(lrs[:9]) and lrs[8] == pytest.approx(1.0) and lrs[9] < lrs[8]


@pytest.mark.parametrize(("warmup_steps", "total_steps"), [(1, 6), (5, 2), (0, 1)])
def test_a_warmup_under_two_steps_is_none(warmup_steps: int, total_steps: int) -> None:
    """OneCycleLR divides by zero over a one-step warm-up; without one the schedule only decays (from lr)."""
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = one_cycle(optimizer, 1.0, warmup_steps=warmup_steps, total_steps=total_steps)
    lrs = []
    for _ in range(total_steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert lrs == sorted(lrs, reverse=True) and len(set(lrs)) == total_steps and lrs[0] <= 1.0


class ScriptedValidation(L.LightningModule):
    """Logs `val/acc` from a script, one value per validation, so the checkpoint choice can be followed."""

    def __init__(self, scores: list[float]) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.scores = scores
        self.validations = 0

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return self.layer(batch).sum()

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        pass

    def on_validation_epoch_end(self) -> None:
        self.log("val/acc", self.scores[self.validations])
        self.validations += 1

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(torch.ones(100, 1), batch_size=1)

    def val_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(torch.ones(1, 1), batch_size=1)


def fit_scripted(tmp_path: Path, scores: list[float]) -> tuple[SelectionCheckpoint, list[list[str]]]:
    """10 steps validated after each one; which checkpoint files existed after each validation."""
    checkpoint = SelectionCheckpoint(
        dirpath=tmp_path,
        monitor="val/acc",
        mode="max",
        filename="step{step}",
        auto_insert_metric_name=False,
        save_on_train_epoch_end=False,  # at validation, as the task configs (validation inside the epoch) do
    )

    class Listing(L.Callback):
        """The files after each validation (Lightning runs checkpoint callbacks last, so look at the next step)."""

        def __init__(self) -> None:
            self.files: list[list[str]] = []

        def look(self) -> None:
            self.files.append(sorted(path.name for path in tmp_path.glob("*.ckpt")))

        def on_train_batch_start(
            self, trainer: L.Trainer, module: L.LightningModule, batch: object, index: int
        ) -> None:
            if index > 0:
                self.look()

        def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
            self.look()

    listing = Listing()
    trainer = L.Trainer(
        max_steps=10,
        val_check_interval=1,
        num_sanity_val_steps=0,
        callbacks=[checkpoint, listing],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(ScriptedValidation(scores))
    return checkpoint, listing.files


def test_no_checkpoint_is_chosen_before_a_fifth_of_the_run(tmp_path: Path) -> None:
    """Steps 1-2 of 10 only set the bar (0.9 at step 1); after them a checkpoint must beat it, as in the reference."""
    scores = [0.9, 0.95, 0.6, 0.8, 0.91, 0.7, 0.99, 0.5, 0.5, 0.5]
    checkpoint, files = fit_scripted(tmp_path, scores)
    assert files[:4] == [[], [], [], []]  # steps 1 and 2: before selection; 3 and 4: below the early best 0.95
    assert files[4] == [] and files[6] == ["step7.ckpt"]  # 0.91 < 0.95 is not kept; 0.99 is
    assert Path(checkpoint.best_model_path).name == "step7.ckpt"
    assert checkpoint.early_best == pytest.approx(0.95)


def test_without_a_better_score_after_selection_begins_nothing_is_kept(tmp_path: Path) -> None:
    checkpoint, files = fit_scripted(tmp_path, [0.99] + [0.5] * 9)
    assert checkpoint.best_model_path == "" and files[-1] == []
