"""The token cache under real concurrency: processes released together by a barrier all prepare the same tiny
generated ListOps in one cache root, while another process keeps reading it."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest

from lra.data import ListOpsDataModule, ListOpsSpec
from lra.data.base import SPLITS
from lra.data.cache import RaggedSplit, is_cached, read_settings

WRITERS = 3
CONTEXT = multiprocessing.get_context("fork")  # real processes, without re-importing torch in each


def tiny(root: Path) -> ListOpsDataModule:
    spec = ListOpsSpec(max_depth=2, min_length=5, max_length=24)
    return ListOpsDataModule(
        num_train=40, num_val=8, num_test=8, spec=spec, max_length=32, batch_size=4, cache_dir=str(root),
        generate_workers=1,
    )  # fmt: skip


def prepare(root: str, barrier: Any) -> None:
    """One writer: wait for the others, then prepare the data (generate the TSVs, build the token cache)."""
    barrier.wait(timeout=60)
    tiny(Path(root)).prepare_data()


def watch(root: str, folder: str, barrier: Any, stop: Any, seen: Any) -> None:
    """A reader: until told to stop, look at the final cache folder; report what it found each time."""
    barrier.wait(timeout=60)
    final = Path(folder)
    while not stop.is_set():
        if not final.exists():
            seen.put("absent")
        elif not is_cached(final):
            seen.put(f"incomplete: {sorted(path.name for path in final.iterdir())}")
        else:
            sizes = read_settings(final)["sizes"]
            opened = {split: len(RaggedSplit.open(final, split)) for split in SPLITS}
            seen.put("complete" if opened == sizes else f"incomplete: {opened} != {sizes}")
        time.sleep(0.002)


def run_writers(root: Path, reader: bool) -> list[str]:
    """WRITERS processes preparing the data at once (and a reader, if asked); what the reader saw."""
    barrier = CONTEXT.Barrier(WRITERS + reader)
    stop, seen = CONTEXT.Event(), CONTEXT.Queue()
    writers = [CONTEXT.Process(target=prepare, args=(str(root), barrier)) for _ in range(WRITERS)]
    watcher = CONTEXT.Process(target=watch, args=(str(root), str(tiny(root).cache_path), barrier, stop, seen))
    for process in [*writers, *([watcher] if reader else [])]:
        process.start()
    for process in writers:
        process.join(timeout=120)
        assert process.exitcode == 0
    stop.set()
    observations = []
    if reader:
        while watcher.is_alive() or not seen.empty():
            while not seen.empty():
                observations.append(seen.get())
            watcher.join(timeout=0.1)
        assert watcher.exitcode == 0
    return observations


def assert_one_complete_cache(root: Path) -> None:
    """The token cache and the generated TSVs, each one complete folder; nothing temporary or stale left."""
    data = tiny(root)
    expected = [data.cache_path.name, data.tsv_files()["train"].parent.name]
    assert sorted(path.name for path in root.iterdir()) == sorted(expected)
    assert read_settings(data.cache_path)["sizes"] == {"train": 40, "val": 8, "test": 8}
    data.setup("fit")
    assert len(data.dataset("train")) == 40


def test_writers_started_together_leave_one_complete_cache_and_a_reader_never_sees_half(tmp_path: Path) -> None:
    seen = run_writers(tmp_path, reader=True)
    assert_one_complete_cache(tmp_path)
    assert seen and set(seen) <= {"absent", "complete"}, [s for s in seen if s.startswith("incomplete")][:3]
    assert seen[-1] == "complete"


def test_an_incomplete_final_folder_is_replaced_not_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A folder under the final name without settings.json (an older writer's unfinished build) is rebuilt."""
    final = tiny(tmp_path).cache_path
    final.mkdir(parents=True)
    (final / "train.tokens.npy").write_bytes(b"half a file")
    run_writers(tmp_path, reader=False)
    assert_one_complete_cache(tmp_path)
    assert (final / "train.tokens.npy").read_bytes() != b"half a file"

    final_copy = tiny(tmp_path / "alone").cache_path  # one writer, in this process: it says what it replaced
    final_copy.mkdir(parents=True)
    (final_copy / "train.labels.npy").write_bytes(b"")
    with caplog.at_level("WARNING", logger="lra.data"):
        tiny(tmp_path / "alone").prepare_data()
    assert f"{final_copy} had no settings.json (an unfinished build by an older writer): replacing it" in caplog.text
    assert is_cached(final_copy)
