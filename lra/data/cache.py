"""The token cache: one folder per dataset and preprocessing settings, of memory-mapped ragged .npy arrays.

Layout of `<root>/<prefix>-<hash>/` (hash = sha256 of the settings and FORMAT_VERSION):
`settings.json`, and per split `<split>.tokens.npy` (all sequences end to end, uint8/uint16/uint32),
`<split>.offsets.npy` (int64, N + 1: sequence i is tokens[offsets[i]:offsets[i + 1]]) and
`<split>.labels.npy` (int64, N). A two-tower dataset (Retrieval: two documents per example) has
`<split>.tokens_a.npy`/`<split>.offsets_a.npy` and `..._b.npy` instead of one tokens/offsets pair.
Folders are built under a temporary sibling name and renamed into place, so a folder that exists is complete.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lra.data.progress import track

log = logging.getLogger("lra.data")

# Bumped whenever the layout or meaning of cached arrays changes; part of every folder's hash.
FORMAT_VERSION = 1
CACHE_ENV = "LRA_CACHE_DIR"
SETTINGS_FILE = "settings.json"
_TOKEN_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.uint32))
_COPY_CHUNK = 1 << 26  # tokens copied at a time when a split's .npy file is written


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """`cache_dir` if given, else $LRA_CACHE_DIR, else ~/.cache/lra."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path.home() / ".cache" / "lra"


def cache_folder(root: Path, prefix: str, settings: Mapping[str, Any]) -> Path:
    """`root/<prefix>-<12 hex digits of the settings' hash>`; settings must be JSON-serialisable."""
    digest = hashlib.sha256(_settings_json(settings).encode()).hexdigest()[:12]
    return root / f"{prefix}-{digest}"


def is_cached(folder: Path) -> bool:
    """Whether a complete cache folder is there (no reading beyond one stat)."""
    return (folder / SETTINGS_FILE).is_file()


def file_fingerprints(files: Mapping[str, Path]) -> dict[str, dict[str, Any]]:
    """{name: resolved path, size, modification time} of source files: cache settings that change when they do."""
    fingerprints = {}
    for name, path in files.items():
        stat = path.stat()
        fingerprints[name] = {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return fingerprints


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds token ids 0 .. vocab_size - 1."""
    for dtype in _TOKEN_DTYPES:
        if vocab_size - 1 <= np.iinfo(dtype).max:
            return dtype
    raise ValueError(f"vocab_size {vocab_size} does not fit in 32-bit token ids")


@contextlib.contextmanager
def atomic_folder(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `final` to fill (its settings.json last); rename it to `final` on success,
    delete it on error or Ctrl-C.

    If another writer put a complete `final` in place first, its folder is kept and this one is discarded; an
    incomplete one (no settings.json: left by an older, non-atomic writer) is replaced. Temporary folders that a
    killed run on this machine left behind (its process is gone) are removed first.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(final)
    temporary = final.with_name(f"{_temporary_prefix(final)}{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    temporary.mkdir()
    try:
        yield temporary
        _put_in_place(temporary, final)
    except KeyboardInterrupt:
        log.warning("interrupted: removing the unfinished %s; the next run builds it from the start", final)
        raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


_PLACING_ATTEMPTS = 5  # renames tried while other writers move stale folders aside at the same time


def _put_in_place(temporary: Path, final: Path) -> None:
    """Rename `temporary` to `final`; where `final` is taken, keep it if complete, else move it aside and retry."""
    for _ in range(_PLACING_ATTEMPTS):
        try:
            os.rename(temporary, final)
            return
        except OSError:
            if not final.is_dir():
                raise
        if is_cached(final):
            return  # another writer's complete folder
        stale = final.with_name(f".{final.name}.stale-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(final, stale)
        except FileNotFoundError:
            continue  # another writer moved it aside first
        log.warning("%s had no %s (an unfinished build by an older writer): replacing it", final, SETTINGS_FILE)
        shutil.rmtree(stale, ignore_errors=True)
    raise OSError(f"could not put {temporary} in place of {final}: other processes keep replacing it")


# This machine's name as it appears in temporary folder names (which record host and process id).
_HOST = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def _temporary_prefix(final: Path) -> str:
    return f".{final.name}.tmp-"


def remove_leftovers(final: Path) -> None:
    """Delete the temporary siblings of `final` left by runs on this machine whose process no longer exists (killed
    before they could clean up); those of live processes or other machines (a shared cache root) are kept."""
    prefix = _temporary_prefix(final)
    for leftover in final.parent.glob(f"{glob.escape(prefix)}*"):
        host, _, pid = leftover.name[len(prefix) :].rpartition("-")[0].rpartition("-")
        if host != _HOST or not pid.isdigit() or _process_exists(int(pid)):
            continue
        log.info("removing %s, left by an interrupted run (process %s is gone); building it again", leftover, pid)
        shutil.rmtree(leftover, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def tower_suffixes(towers: int) -> tuple[str, ...]:
    """File-name suffixes of each sequence of an example: ("",) for one tower, ("_a", "_b") for two."""
    if towers == 1:
        return ("",)
    if towers == 2:
        return ("_a", "_b")
    raise ValueError(f"towers must be 1 or 2, got {towers!r}")


class RaggedBuilder:
    """Writes one split's token sequences end to end (one ragged array per tower) as they arrive, with offsets and
    labels; tokens go straight to disk, so memory stays small whatever the split's size (Path-X: 2.6 GB of tokens).
    """

    def __init__(self, folder: Path, split: str, vocab_size: int, towers: int = 1) -> None:
        self.folder = folder
        self.split = split
        self.vocab_size = vocab_size
        self.dtype = token_dtype(vocab_size)
        self.suffixes = tower_suffixes(towers)
        self._parts = [open(self._part(suffix), "wb") for suffix in self.suffixes]  # noqa: SIM115 (closed in save)
        self._offsets: list[list[int]] = [[0] for _ in self.suffixes]
        self._labels: list[int] = []

    def _part(self, suffix: str) -> Path:
        return self.folder / f"{self.split}.tokens{suffix}.part"

    def append(self, tokens: Sequence[int] | np.ndarray | tuple[Sequence[int] | np.ndarray, ...], label: int) -> None:
        """Add one example: its token ids (one tower) or a tuple of one sequence per tower, and its label."""
        sequences = tokens if len(self.suffixes) > 1 else (tokens,)
        if len(sequences) != len(self.suffixes):
            raise ValueError(f"expected {len(self.suffixes)} sequences per example, got {len(sequences)}")
        for part, offsets, sequence in zip(self._parts, self._offsets, sequences, strict=True):
            values = np.asarray(sequence)
            if values.size:
                highest, lowest = int(values.max()), int(values.min())
                where = f"split {self.split!r}, example {len(self._labels)}"
                if highest >= self.vocab_size:
                    raise ValueError(f"{where}: token id {highest} >= vocab_size {self.vocab_size}")
                if lowest < 0:
                    raise ValueError(f"{where}: token id {lowest} < 0")
            part.write(values.astype(self.dtype, copy=False).tobytes())
            offsets.append(offsets[-1] + values.size)
        self._labels.append(label)

    def __len__(self) -> int:
        return len(self._labels)

    def close(self) -> None:
        """Close the files the tokens are written to (save does; call it when a build is abandoned)."""
        for part in self._parts:
            part.close()

    def save(self) -> None:
        """Turn the written tokens into `.npy` files (copied in chunks) and write offsets and labels."""
        self.close()
        for suffix, offsets in zip(self.suffixes, self._offsets, strict=True):
            path = self.folder / f"{self.split}.tokens{suffix}.npy"
            if offsets[-1] == 0:
                np.save(path, np.zeros(0, self.dtype))
            else:
                tokens = np.lib.format.open_memmap(path, mode="w+", dtype=self.dtype, shape=(offsets[-1],))
                with open(self._part(suffix), "rb") as source:
                    for start in range(0, offsets[-1], _COPY_CHUNK):
                        chunk = np.fromfile(source, dtype=self.dtype, count=_COPY_CHUNK)
                        tokens[start : start + chunk.size] = chunk
                tokens.flush()
                del tokens
            self._part(suffix).unlink()
            np.save(self.folder / f"{self.split}.offsets{suffix}.npy", np.asarray(offsets, dtype=np.int64))
        np.save(self.folder / f"{self.split}.labels.npy", np.asarray(self._labels, dtype=np.int64))


def write_cache(
    folder: Path,
    settings: Mapping[str, Any],
    vocab_size: int,
    splits: Mapping[str, Iterable[tuple[Any, int]]],
    towers: int = 1,
    expected: Mapping[str, int] | None = None,
) -> None:
    """Build the cache folder atomically from each split's (tokens, label) pairs; tokens = (a, b) with two towers.

    Progress is shown per split (reading, tokenising and writing together) against `expected` sizes if given.
    """
    name = folder.name.rpartition("-")[0] or folder.name  # without the settings' hash
    with atomic_folder(folder) as temporary:
        sizes = {}
        for split, examples in splits.items():
            builder = RaggedBuilder(temporary, split, vocab_size, towers)
            total = (expected or {}).get(split)
            try:
                for tokens, label in track(examples, f"caching {name} {split}", total, "examples"):
                    builder.append(tokens, label)
            finally:
                builder.close()
            builder.save()
            sizes[split] = len(builder)
        description = {
            "format_version": FORMAT_VERSION,
            "vocab_size": vocab_size,
            "towers": towers,
            "dtype": token_dtype(vocab_size).name,
            "sizes": sizes,
            "settings": settings,
        }
        write_settings(temporary, description)


def generated_folder(folder: Path, settings: Mapping[str, Any], generate: Callable[[Path], object], what: str) -> Path:
    """`folder` of generated files: reused when complete, else filled by `generate(temporary)` and renamed in place.

    `what` names the files in the log ("writing <what> into ...").
    """
    if is_cached(folder):
        log.debug("reusing the generated %s at %s", what, folder)
        return folder
    log.info("writing %s into %s", what, folder)
    start = time.perf_counter()
    with atomic_folder(folder) as temporary:
        generate(temporary)
        write_settings(temporary, settings)
    log.info("generated the %s in %.1f s", what, time.perf_counter() - start)
    return folder


def write_settings(folder: Path, description: Mapping[str, Any]) -> None:
    """Write `settings.json`, the file whose presence marks a folder complete (see is_cached)."""
    (folder / SETTINGS_FILE).write_text(json.dumps(description, indent=2, sort_keys=True) + "\n")


def read_settings(folder: Path) -> dict[str, Any]:
    """The settings.json of a cache folder: format_version, vocab_size, dtype, sizes, settings."""
    return json.loads((folder / SETTINGS_FILE).read_text())


@dataclass(frozen=True)
class RaggedSplit:
    """One split read back memory-mapped: example i's sequence in tower t is
    tokens[t][offsets[t][i]:offsets[t][i + 1]], its label labels[i]."""

    tokens: tuple[np.ndarray, ...]
    offsets: tuple[np.ndarray, ...]
    labels: np.ndarray

    @classmethod
    def open(cls, folder: Path, split: str, towers: int = 1) -> RaggedSplit:
        def load(name: str) -> np.ndarray:
            path = folder / f"{split}.{name}.npy"
            if not path.is_file():
                raise FileNotFoundError(f"token cache {folder} has no {path.name}; delete the folder to rebuild it")
            return np.load(path, mmap_mode="r")

        suffixes = tower_suffixes(towers)
        return cls(
            tokens=tuple(load(f"tokens{suffix}") for suffix in suffixes),
            offsets=tuple(load(f"offsets{suffix}") for suffix in suffixes),
            labels=load("labels"),
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[np.ndarray | tuple[np.ndarray, ...], int]:
        """(token ids, label); token ids are a tuple of one array per tower when there are two towers."""
        pairs = zip(self.tokens, self.offsets, strict=True)
        sequences = tuple(tokens[offsets[index] : offsets[index + 1]] for tokens, offsets in pairs)
        return (sequences if len(sequences) > 1 else sequences[0]), int(self.labels[index])

    def lengths(self, tower: int = 0) -> np.ndarray:
        """(N,) sequence lengths of one tower, without reading the tokens."""
        return np.diff(self.offsets[tower])


def _settings_json(settings: Mapping[str, Any]) -> str:
    return json.dumps({"format_version": FORMAT_VERSION, **settings}, sort_keys=True)
