"""Batches drawn from an endless stream of reshuffled passes over a split, as the protocol-2 reference code draws them.

The reference (Skyformer's `LRADataset(endless=True)`) reshuffles a split whenever it runs out and keeps
filling the batch, so a batch may span two passes, and each evaluation takes the next N batches of one
dev stream that lives across the whole run. Here pass k is the permutation seeded by (seed, k), so any
point of the stream is known from how many examples came before it: a resumed run starts at exactly
`start = examples already drawn`, with no state to save.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class BatchStream(Sampler[list[int]]):
    """Index batches from the endless stream pass 0, pass 1, ... of seeded permutations of range(size).

    Each `iter()` yields `batches` batches (None: without end) and continues where the previous one stopped.
    """

    def __init__(self, size: int, batch_size: int, seed: int, batches: int | None = None, start: int = 0) -> None:
        if size < 1 or batch_size < 1 or start < 0 or (batches is not None and batches < 1):
            raise ValueError(
                f"BatchStream needs size, batch_size >= 1, batches None or >= 1 and start >= 0; "
                f"got size={size}, batch_size={batch_size}, batches={batches}, start={start}"
            )
        self.size = size
        self.batch_size = batch_size
        self.seed = seed
        self.batches = batches
        self.drawn = start  # examples drawn from the stream so far
        self._pass: tuple[int, np.ndarray] | None = None  # (pass number, its permutation)

    def permutation(self, pass_number: int) -> np.ndarray:
        """The order of pass `pass_number`: a permutation of range(size) seeded by (seed, pass_number)."""
        if self._pass is None or self._pass[0] != pass_number:
            self._pass = (pass_number, np.random.default_rng([self.seed, pass_number]).permutation(self.size))
        return self._pass[1]

    def next_batch(self) -> list[int]:
        """The next `batch_size` indices of the stream (crossing into the next pass where one runs out)."""
        batch: list[int] = []
        while len(batch) < self.batch_size:
            pass_number, position = divmod(self.drawn, self.size)
            take = min(self.batch_size - len(batch), self.size - position)
            batch.extend(self.permutation(pass_number)[position : position + take].tolist())
            self.drawn += take
        return batch

    def __iter__(self) -> Iterator[list[int]]:
        count = 0
        while self.batches is None or count < self.batches:
            yield self.next_batch()
            count += 1

    def __len__(self) -> int:
        if self.batches is None:
            raise TypeError("an endless BatchStream has no length")
        return self.batches
