"""BatchStream: the endless stream of seeded reshuffled passes that training and evaluation draw batches from."""

from __future__ import annotations

import numpy as np
import pytest
from torch.utils.data import DataLoader

from lra.data.sampling import BatchStream


def take(stream: BatchStream, batches: int) -> list[list[int]]:
    return [stream.next_batch() for _ in range(batches)]


def test_each_pass_is_a_permutation_and_batches_cross_passes() -> None:
    stream = BatchStream(size=10, batch_size=4, seed=7)
    batches = take(stream, 5)  # 20 examples: exactly two passes, the third batch spans both
    flat = [index for batch in batches for index in batch]
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:]) == list(range(10))
    assert flat[:10] != flat[10:]  # reshuffled
    assert flat[:10] == np.random.default_rng([7, 0]).permutation(10).tolist()


def test_a_stream_started_later_continues_exactly_where_another_stands() -> None:
    """A resumed run needs no saved state: start = examples already drawn."""
    whole = take(BatchStream(size=13, batch_size=5, seed=3), 9)
    resumed = BatchStream(size=13, batch_size=5, seed=3, start=4 * 5)
    assert take(resumed, 5) == whole[4:]


def test_bounded_iterations_take_successive_windows_of_one_stream() -> None:
    """Each evaluation takes the next `batches` batches, as the reference's dev stream does."""
    stream = BatchStream(size=7, batch_size=3, seed=1, batches=2)
    first, second = list(stream), list(stream)
    assert len(stream) == 2 and len(first) == len(second) == 2
    assert first + second == take(BatchStream(size=7, batch_size=3, seed=1), 4)


def test_endless_streams_have_no_length_and_feed_a_dataloader() -> None:
    stream = BatchStream(size=5, batch_size=2, seed=0)
    with pytest.raises(TypeError):
        len(stream)
    loader = DataLoader(list(range(100, 105)), batch_sampler=stream)
    iterator = iter(loader)
    values = [value for _ in range(5) for value in next(iterator).tolist()]  # 10 values: two whole passes
    assert sorted(values[:5]) == sorted(values[5:]) == list(range(100, 105))


def test_bad_stream_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="size=0"):
        BatchStream(size=0, batch_size=2, seed=0)
    with pytest.raises(ValueError, match="batches=0"):
        BatchStream(size=3, batch_size=2, seed=0, batches=0)
