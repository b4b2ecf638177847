"""LRADataModule: the shared cache, datasets, padding collate and loaders of every LRA task."""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lra.data.cache import RaggedSplit, cache_folder, cache_root, is_cached, write_cache
from lra.data.checks import check_int
from lra.data.sampling import BatchStream
from lra.protocol import Protocol, check_protocol

log = logging.getLogger("lra.data")

SPLITS = ("train", "val", "test")


class RaggedDataset(Dataset):
    """One cached split; item i = (token ids: a read-only memory-mapped slice, or one per tower; label: int)."""

    def __init__(self, folder: Path, split: str, towers: int = 1) -> None:
        self.folder = folder
        self.split = split
        self.towers = towers
        self._data = RaggedSplit.open(folder, split, towers)

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return self._data[index]

    @property
    def data(self) -> RaggedSplit:
        """The memory-mapped arrays behind this split."""
        return self._data

    def __getstate__(self) -> dict[str, Any]:
        # Worker processes reopen the memory maps instead of receiving copies of the arrays.
        return {"folder": self.folder, "split": self.split, "towers": self.towers}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["folder"], state["split"], state["towers"])


def pad(sequences: Sequence[np.ndarray], mask_zeros: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest: tokens (B, L) int64 with 0 after each sequence, mask (B, L) bool (True = real).

    With `mask_zeros` every token id 0 is masked, not only the padding: the protocol-2 reference code's
    `mask = input_ids != 0`, which also hides black pixels. (Where 0 is only padding the two agree.)
    """
    lengths = torch.tensor([len(tokens) for tokens in sequences], dtype=torch.long)  # (B,)
    padded = np.zeros((len(sequences), int(lengths.max())), dtype=np.int64)  # (B, L)
    for row, tokens in enumerate(sequences):
        padded[row, : len(tokens)] = tokens
    tokens = torch.from_numpy(padded)
    mask = tokens != 0 if mask_zeros else torch.arange(padded.shape[1]) < lengths[:, None]  # (B, L)
    return tokens, mask


@dataclass(frozen=True)
class Collate:
    """Batches as the model takes them: `tokens`/`mask` (or `tokens_a`/`mask_a`, `tokens_b`/`mask_b` for two towers,
    each padded to its own longest) and `label` (B,). `mask_zeros`: mask every token id 0 (see `pad`)."""

    two_tower: bool = False
    mask_zeros: bool = False

    def __call__(self, batch: Sequence[tuple[Any, int]]) -> dict[str, torch.Tensor]:
        labels = torch.tensor([label for _, label in batch], dtype=torch.long)  # (B,)
        if not self.two_tower:
            tokens, mask = pad([tokens for tokens, _ in batch], self.mask_zeros)
            return {"tokens": tokens, "mask": mask, "label": labels}
        tokens_a, mask_a = pad([pair[0] for pair, _ in batch], self.mask_zeros)
        tokens_b, mask_b = pad([pair[1] for pair, _ in batch], self.mask_zeros)
        return {"tokens_a": tokens_a, "mask_a": mask_a, "tokens_b": tokens_b, "mask_b": mask_b, "label": labels}


class LRADataModule(L.LightningDataModule, abc.ABC):
    """Base of the LRA data modules: tokenised splits cached once, then read memory-mapped.

    A subclass names its cache (`cache_prefix`, `cache_settings`: everything that changes the tokens)
    and yields each split's (token ids, label) pairs from `examples`; `prepare_data` builds the cache
    when it is missing, `setup` opens it. Sizes the model needs are read-only properties.

    `protocol` (faithful | clean, see lra.protocol) decides the task's definition where the published code
    departs from the corrected one; the model reads it too (linked by the CLI). Training batches come from an
    endless stream of seeded reshuffled passes (`BatchStream`), as in the reference code; with `eval_batches`
    each validation takes the next `eval_batches` batches of an endless validation stream (the reference's
    fixed number of dev batches), otherwise the whole validation split.

    A resumed run continues both streams exactly: the training stream from the examples its restored optimizer
    steps drew, the validation stream from its position saved in the checkpoint (`state_dict`). Loaders draw their
    seeds from their own generator, never from torch's global one, so the dropout draws depend only on the steps.
    """

    def __init__(
        self,
        *,
        batch_size: int,
        max_length: int,
        protocol: Protocol = "faithful",
        eval_batches: int | None = None,
        num_workers: int = 1,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        check_int("batch_size", batch_size, 1)
        check_int("max_length", max_length, 1)
        check_int("num_workers", num_workers, 0)
        if eval_batches is not None:
            check_int("eval_batches", eval_batches, 1)
        self.batch_size = batch_size
        self.protocol = check_protocol(protocol)
        self.eval_batches = eval_batches
        self.num_workers = num_workers
        self.cache_dir = cache_dir
        self._max_length = max_length
        self._datasets: dict[str, RaggedDataset] = {}
        self._val_stream: BatchStream | None = None
        self._val_start = 0  # examples of the validation stream drawn before this run (resumed: from the checkpoint)

    # What a task defines.

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int:
        """Token ids are 0 .. vocab_size - 1 (0 is padding where the task pads)."""

    @property
    @abc.abstractmethod
    def num_classes(self) -> int:
        """Labels are 0 .. num_classes - 1."""

    @property
    @abc.abstractmethod
    def cache_prefix(self) -> str:
        """Readable start of the cache folder's name, e.g. `listops-generated`."""

    @abc.abstractmethod
    def cache_settings(self) -> dict[str, Any]:
        """JSON-serialisable settings that determine the cached tokens (hashed into the folder name)."""

    @abc.abstractmethod
    def examples(self, split: str) -> Iterable[tuple[Any, int]]:
        """The (token ids, label) pairs of `split`, sequences already truncated to max_length.

        Two-tower tasks yield ((token ids a, token ids b), label).
        """

    # Shared.

    @property
    def max_length(self) -> int:
        """Longest sequence the model sees (sequences are truncated to it when tokenised)."""
        return self._max_length

    @property
    def two_tower(self) -> bool:
        """Whether a batch holds two sequences per example (Retrieval); single sequence here."""
        return False

    @property
    def fixed_length(self) -> bool:
        """Whether every sequence is exactly max_length tokens (image tasks: no padding at all)."""
        return False

    def reference_sizes(self) -> dict[str, int] | None:
        """The benchmark's split sizes for this data (README, "Prepare and verify"; checked by `lra data verify`);
        None if custom."""
        return None

    def describe(self) -> str:
        """One line for the log saying where the data came from and how it is split (tasks add detail)."""
        return f"{type(self).__name__}: {self.cache_prefix}"

    @property
    def masks_zeros(self) -> bool:
        """Whether every token id 0 is masked like padding (faithful: the reference's `input_ids != 0`)."""
        return self.protocol == "faithful"

    def token_summary(self) -> str:
        """How tokens are made and which positions the model treats as padding, for logs and `lra data verify`."""
        hidden = "every token id 0 (the reference's input_ids != 0)" if self.masks_zeros else "padding only"
        return f"protocol {self.protocol}; masked: {hidden}"

    @property
    def cache_path(self) -> Path:
        """This dataset's cache folder under the cache root (may not exist yet)."""
        return cache_folder(cache_root(self.cache_dir), self.cache_prefix, self.cache_settings())

    def prepare_data(self) -> None:
        """Build the token cache unless it is already there."""
        settings = self.cache_settings()
        folder = cache_folder(cache_root(self.cache_dir), self.cache_prefix, settings)
        if is_cached(folder):
            log.info("%s: token cache hit at %s", type(self).__name__, folder)
            return
        log.info("%s: building the token cache at %s", type(self).__name__, folder)
        start = time.perf_counter()
        splits = {split: self.examples(split) for split in SPLITS}
        towers = 2 if self.two_tower else 1
        write_cache(folder, settings, self.vocab_size, splits, towers, expected=self.reference_sizes())
        log.info("%s: token cache built in %.1f s at %s", type(self).__name__, time.perf_counter() - start, folder)

    def setup(self, stage: str | None = None) -> None:
        """Open the cached splits (memory-mapped); builds the cache first if prepare_data was skipped."""
        folder = self.cache_path
        if not is_cached(folder):
            self.prepare_data()
        towers = 2 if self.two_tower else 1
        self._datasets = {split: RaggedDataset(folder, split, towers) for split in SPLITS}
        log.info("%s", self.describe())
        log.info("%s", self.token_summary())

    def dataset(self, split: str) -> RaggedDataset:
        """The opened dataset of `split` (train, val or test)."""
        if split not in self._datasets:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before the {split!r} split is read")
        return self._datasets[split]

    def train_dataloader(self) -> DataLoader:
        """The endless training stream, seeded from torch's seed (seed_everything), resumed after the batches that
        the restored optimizer steps took (Lightning saves only at optimizer steps)."""
        dataset = self.dataset("train")
        trainer = self.trainer
        batches_done = trainer.global_step * trainer.accumulate_grad_batches if trainer is not None else 0
        stream = BatchStream(len(dataset), self.batch_size, torch.initial_seed(), start=batches_done * self.batch_size)
        return self._loader(dataset, batch_sampler=stream)

    def val_dataloader(self) -> DataLoader:
        dataset = self.dataset("val")
        if self.eval_batches is None:
            return self._loader(dataset, batch_size=self.batch_size)
        if self._val_stream is None:  # one stream for the whole run: each validation takes its next batches
            seed = torch.initial_seed() + 1
            self._val_stream = BatchStream(len(dataset), self.batch_size, seed, self.eval_batches, self._val_start)
        return self._loader(dataset, batch_sampler=self._val_stream)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of the data: how far the validation stream has been drawn."""
        if self.eval_batches is None:
            return {}
        return {"val_examples_drawn": self._val_stream.drawn if self._val_stream is not None else self._val_start}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the validation stream where the checkpointed run stood (before any validation of this run)."""
        self._val_start = int(state_dict.get("val_examples_drawn", 0))
        self._val_stream = None

    def test_dataloader(self) -> DataLoader:
        """Every test example (clean); faithful: a seeded shuffle without the last partial batch, as the reference."""
        dataset = self.dataset("test")
        if self.protocol == "clean":
            return self._loader(dataset, batch_size=self.batch_size)
        if len(dataset) < self.batch_size:
            log.warning(
                "the test split (%d) is smaller than one batch (%d): scoring it whole, not dropping it",
                len(dataset),
                self.batch_size,
            )
        order = np.random.default_rng([torch.initial_seed(), 2]).permutation(len(dataset)).tolist()  # seeded shuffle
        drop_last = len(dataset) >= self.batch_size
        return self._loader(dataset, batch_size=self.batch_size, sampler=order, drop_last=drop_last)

    def _loader(self, dataset: RaggedDataset, **sampling: Any) -> DataLoader:
        return DataLoader(
            dataset,
            **sampling,
            collate_fn=Collate(self.two_tower, self.masks_zeros),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            generator=torch.Generator().manual_seed(torch.initial_seed()),  # workers' seeds: not from the global one
        )
