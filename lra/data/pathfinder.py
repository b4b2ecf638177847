"""Pathfinder and Path-X (LRA; Tay et al., 2021) from Pathfinder images (Linsley et al., 2018): reader and DataModule.

One reader serves the official release and our generator's output, which share the release's layout (README,
"Pathfinder and Path-X"): `metadata/<k>.npy` TEXT files list `imgs/<k>/sample_<i>.png` with its label; each N×N
grayscale PNG becomes N² tokens (row-major, vocabulary 256, no padding: 0 is a black pixel). The images, in
metadata order, are split 80/10/10 by a seeded permutation. Path-X is the same at 128×128 (16,384 tokens).
"""

from __future__ import annotations

import functools
import itertools
import logging
import multiprocessing
import os
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from lra.data.base import LRADataModule
from lra.data.cache import cache_folder, cache_root, file_fingerprints, generated_folder, is_cached, read_settings
from lra.data.checks import check_int, check_workers
from lra.data.generate.pathfinder import DIFFICULTIES, GENERATOR_VERSION, RESOLUTIONS, generate_pathfinder
from lra.data.layout import RELEASE_URL, find_layout
from lra.data.progress import ignore_interrupts
from lra.protocol import Protocol

log = logging.getLogger("lra.data")

VOCAB_SIZE = 256
NUM_CLASSES = 2
SPLIT_PERCENT = {"train": 80, "val": 10, "test": 10}
RELEASE_IMAGES = 200_000  # per resolution and difficulty in the official release
# The official release's one known defect: an empty file, skipped with a warning. (resolution, difficulty).
KNOWN_EMPTY = {(32, 6): "imgs/0/sample_172.png"}
# Images per generated shard (the generator's images depend on it, so it is part of the generation settings).
GENERATED_SHARD_SIZE = 1000
# Images decoded per task handed to a worker process.
DECODE_CHUNK = 1000
# Modes Pillow turns into 8-bit grayscale without losing range (the release's PNGs are all mode L already).
_CONVERTIBLE_MODES = {"1", "L", "LA", "P", "RGB", "RGBA"}
_LABELS = {"0": 0, "1": 1}


class PathfinderImage(NamedTuple):
    """One image listed by the metadata: its path and label (0: markers on different curves, 1: the same)."""

    path: str
    label: int


def level_layouts(resolution: int, difficulty: int) -> tuple[str, ...]:
    """Where a level folder (holding imgs/ and metadata/) may sit under a root, in the order looked for."""
    name = f"pathfinder{resolution}/{DIFFICULTIES[difficulty]}"
    return (".", DIFFICULTIES[difficulty], name, f"lra_release/{name}", f"lra_release/lra_release/{name}")


def find_pathfinder_level(root: str | os.PathLike[str], resolution: int, difficulty: int) -> Path:
    """The level folder pathfinder{resolution}/{DIFFICULTIES[difficulty]} under `root` in any accepted layout."""
    return find_layout(
        root,
        f"Pathfinder {resolution}×{resolution} {DIFFICULTIES[difficulty]}",
        level_layouts(resolution, difficulty),
        ("imgs", "metadata"),
        "the folders imgs/<k>/ (sample_<i>.png) and metadata/ (<k>.npy text files)",
        f"They come from the official LRA release {RELEASE_URL} (unpack it and pass the unpacked folder), or from "
        f"`lra data generate pathfinder --out DIR --resolution {resolution} --difficulty {difficulty}` (pass DIR); "
        f"or leave data.root unset to generate and cache them automatically.",
    )


def metadata_files(level: Path) -> list[Path]:
    """The level's metadata/<k>.npy files, sorted numerically by k."""
    numbered = []
    for path in (level / "metadata").glob("*.npy"):
        if not path.stem.isdigit():
            raise ValueError(f"{path}: expected metadata files named <k>.npy with an integer k")
        numbered.append((int(path.stem), path))
    if not numbered:
        raise FileNotFoundError(f"{level / 'metadata'}: no metadata files (<k>.npy) found")
    return [path for _, path in sorted(numbered)]


def parse_metadata_line(line: str, where: str) -> tuple[str, str, int] | None:
    """(image folder, file name, label) of one metadata line, None for a blank line; `where` names it in errors.

    A line needs at least 4 whitespace-separated fields: image folder (imgs/<k>), file name, index, label (0 or 1).
    """
    fields = line.split()
    if not fields:
        return None
    if len(fields) < 4:
        raise ValueError(
            f"{where}: expected at least 4 whitespace-separated fields (image folder, file name, index, label), "
            f"got {len(fields)}: {line.strip()!r}"
        )
    label = _LABELS.get(fields[3])
    if label is None:
        raise ValueError(f"{where}: expected a label 0 or 1 in field 4, got {fields[3]!r}")
    return fields[0], fields[1], label


def read_pathfinder_index(level: Path, resolution: int, difficulty: int) -> list[PathfinderImage]:
    """Every image the level's metadata lists (files sorted by k, lines in order): path and label.

    Raises ValueError naming the metadata file and line for a malformed line, FileNotFoundError for a listed
    image that is missing. The release's known empty image (KNOWN_EMPTY) is skipped with a warning.
    """
    known_empty = KNOWN_EMPTY.get((resolution, difficulty))
    listings: dict[str, set[str]] = {}  # image folder -> its file names (one listdir per folder, no stat per image)
    images = []
    for metadata in metadata_files(level):
        with open(metadata, encoding="utf-8") as file:
            for number, line in enumerate(file, start=1):
                parsed = parse_metadata_line(line, f"{metadata}, line {number}")
                if parsed is None:
                    continue
                folder, name, label = parsed
                if folder not in listings:
                    listings[folder] = set(os.listdir(level / folder)) if (level / folder).is_dir() else set()
                path = os.path.join(level, folder, name)  # plain strings: pathlib is the slow part at 200,000
                if name not in listings[folder]:
                    raise FileNotFoundError(f"{metadata}, line {number}: the image {path} does not exist")
                if f"{folder}/{name}" == known_empty and os.path.getsize(path) == 0:
                    warnings.warn(
                        f"skipping {path}: the release's known empty image (listed in {metadata}, line {number})",
                        stacklevel=2,
                    )
                    continue
                images.append(PathfinderImage(path, label))
    return images


def split_sizes(count: int) -> dict[str, int]:
    """80/10/10 of `count` images: val and test 10% each (rounded half up), train the rest."""
    held_out = (count * SPLIT_PERCENT["val"] + 50) // 100
    return {"train": count - 2 * held_out, "val": held_out, "test": held_out}


def split_indices(count: int, seed: int) -> dict[str, np.ndarray]:
    """{split: sorted indices into the metadata order}: consecutive runs of one seeded permutation of range(count)."""
    permutation = np.random.default_rng(seed).permutation(count)  # (count,)
    sizes = split_sizes(count)
    bounds = np.cumsum([0, sizes["train"], sizes["val"], sizes["test"]])
    return {split: np.sort(permutation[bounds[i] : bounds[i + 1]]) for i, split in enumerate(sizes)}


class _Refused(Exception):
    """A readable image that is not what the task expects (mode or size)."""


def decode_png(path: str, resolution: int) -> np.ndarray:
    """(resolution²,) uint8 row-major pixels of one square grayscale PNG; ValueError naming the file otherwise.

    Mode L is read as is; bilevel, palette, RGB(A) and LA images are converted by Pillow (ITU-R 601 luma, alpha
    dropped); 16-bit and float images are refused rather than clipped.
    """
    try:
        with Image.open(path, formats=("PNG",)) as image:
            if image.mode not in _CONVERTIBLE_MODES:
                raise _Refused(f"expected an 8-bit grayscale PNG (mode L), got mode {image.mode}")
            if image.size != (resolution, resolution):
                width, height = image.size
                raise _Refused(f"expected a {resolution}×{resolution} image, got {width}×{height}")
            pixels = (image if image.mode == "L" else image.convert("L")).tobytes()  # decoded here
    except _Refused as error:
        raise ValueError(f"{path}: {error}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ValueError(f"{path}: not a readable PNG image ({type(error).__name__}: {error})") from error
    return np.frombuffer(pixels, dtype=np.uint8)


def _decode_chunk(task: tuple[Sequence[str], int]) -> np.ndarray:
    paths, resolution = task
    pixels = np.empty((len(paths), resolution * resolution), dtype=np.uint8)  # (n, N²)
    for row, path in enumerate(paths):
        pixels[row] = decode_png(path, resolution)
    return pixels


def decode_pngs(paths: Sequence[str], resolution: int, workers: int | None = None) -> Iterator[np.ndarray]:
    """Decode `paths` in order, yielding (chunk, resolution²) uint8 arrays of up to DECODE_CHUNK images each.

    `workers` processes (default: all cores) decode chunks; at most two per process are in flight, so memory holds
    a few chunks, never the whole split.
    """
    tasks = [(paths[start : start + DECODE_CHUNK], resolution) for start in range(0, len(paths), DECODE_CHUNK)]
    processes = min(workers or os.cpu_count() or 1, len(tasks))
    if processes <= 1:
        yield from map(_decode_chunk, tasks)
        return
    waiting = iter(tasks)
    with ProcessPoolExecutor(
        processes, mp_context=multiprocessing.get_context(), initializer=ignore_interrupts
    ) as pool:
        in_flight = deque(pool.submit(_decode_chunk, task) for task in itertools.islice(waiting, 2 * processes))
        try:
            while in_flight:
                pixels = in_flight.popleft().result()
                in_flight.extend(pool.submit(_decode_chunk, task) for task in itertools.islice(waiting, 1))
                yield pixels
        finally:
            for future in in_flight:  # on an error or an abandoned read: skip what has not started
                future.cancel()


class PathfinderDataModule(LRADataModule):
    """Pathfinder (resolution 32) and Path-X (resolution 128): official images under `root`, or (root=None)
    generated with lra.data.generate.pathfinder and cached.

    `difficulty` is the contour length: 6 (curv_baseline), 9 or 14 (curv_contour_length_14, LRA's level). The
    images are split 80/10/10 by a permutation seeded with `seed`, which also seeds generation. `workers`
    processes (default: all cores) generate and decode; they do not change the data.
    """

    def __init__(
        self,
        root: str | None = None,
        resolution: int = 32,
        difficulty: int = 14,
        num_images: int = RELEASE_IMAGES,
        seed: int = 0,
        batch_size: int = 128,
        protocol: Protocol = "faithful",
        eval_batches: int | None = None,
        num_workers: int = 1,
        cache_dir: str | None = None,
        workers: int | None = None,
    ) -> None:
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {', '.join(map(str, RESOLUTIONS))}, got {resolution!r}")
        if difficulty not in DIFFICULTIES:
            raise ValueError(
                f"difficulty (the contour length) must be one of {', '.join(map(str, DIFFICULTIES))}, "
                f"got {difficulty!r}"
            )
        super().__init__(
            batch_size=batch_size,
            max_length=resolution * resolution,
            protocol=protocol,
            eval_batches=eval_batches,
            num_workers=num_workers,
            cache_dir=cache_dir,
        )
        check_int("num_images", num_images, 5)
        check_int("seed", seed, 0)
        check_workers("workers", workers)
        self.root = root
        self.resolution = resolution
        self.difficulty = difficulty
        self.num_images = num_images
        self.seed = seed
        self.workers = workers

    @property
    def vocab_size(self) -> int:
        return VOCAB_SIZE

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES

    @property
    def fixed_length(self) -> bool:
        return True

    @property
    def level(self) -> str:
        """The release's folder name of this difficulty, e.g. curv_contour_length_14."""
        return DIFFICULTIES[self.difficulty]

    @property
    def cache_prefix(self) -> str:
        source = "generated" if self.root is None else "official"
        return f"pathfinder{self.resolution}-{self.level}-{source}"

    def generation_settings(self) -> dict[str, Any]:
        """Everything the generated images depend on (not the number of processes)."""
        return {
            "generator_version": GENERATOR_VERSION,
            "resolution": self.resolution,
            "difficulty": self.difficulty,
            "num_images": self.num_images,
            "seed": self.seed,
            "shard_size": GENERATED_SHARD_SIZE,
        }

    def cache_settings(self) -> dict[str, Any]:
        split = {"seed": self.seed, "percent": SPLIT_PERCENT}
        if self.root is None:
            return {"task": "pathfinder", "generation": self.generation_settings(), "split": split}
        level = find_pathfinder_level(self.root, self.resolution, self.difficulty)
        metadata = file_fingerprints({path.name: path for path in metadata_files(level)})
        return {
            "task": "pathfinder",
            "resolution": self.resolution,
            "difficulty": self.difficulty,
            "folder": str(level.resolve()),
            "metadata": metadata,
            "split": split,
        }

    def reference_sizes(self) -> dict[str, int]:
        """80/10/10 of num_images (generated) or of the release's 200,000 (less its one empty image where it is)."""
        if self.root is None:
            return split_sizes(self.num_images)
        return split_sizes(RELEASE_IMAGES - ((self.resolution, self.difficulty) in KNOWN_EMPTY))

    def describe(self) -> str:
        folder = self.cache_path
        sizes = read_settings(folder)["sizes"] if is_cached(folder) else self.reference_sizes()
        counts = "/".join(f"{sizes[split]:,}" for split in ("train", "val", "test"))
        name = "Path-X" if self.resolution == 128 else "Pathfinder"
        source = f"generated, seed {self.seed}" if self.root is None else f"official, {self.root}"
        return (
            f"{name} {self.resolution}×{self.resolution} {self.level} ({source}): {counts} "
            f"(80/10/10, split seed {self.seed})"
        )

    def level_folder(self) -> Path:
        """The folder holding imgs/ and metadata/: found under root, or generated into the cache root if missing."""
        if self.root is not None:
            return find_pathfinder_level(self.root, self.resolution, self.difficulty)
        settings = self.generation_settings()
        folder = generated_folder(
            cache_folder(cache_root(self.cache_dir), "pathfinder-generated-png", settings),
            settings,
            lambda out: generate_pathfinder(
                out,
                self.resolution,
                self.difficulty,
                self.num_images,
                self.seed,
                self.workers,
                GENERATED_SHARD_SIZE,
                cache_dir=self.cache_dir,
            ),
            f"{self.num_images} Pathfinder images ({self.resolution}px, {self.level}, seed {self.seed})",
        )
        return folder / f"pathfinder{self.resolution}" / self.level

    @functools.cached_property
    def split_images(self) -> dict[str, list[PathfinderImage]]:
        """{split: its images in order}: the metadata index read once (generating the images first if needed)."""
        level = self.level_folder()
        images = read_pathfinder_index(level, self.resolution, self.difficulty)
        if len(images) < 5:
            raise ValueError(f"{level}: {len(images)} images listed; an 80/10/10 split needs at least 5")
        indices = split_indices(len(images), self.seed)
        return {split: [images[index] for index in indices[split]] for split in indices}

    def examples(self, split: str) -> Iterator[tuple[np.ndarray, int]]:
        chosen = self.split_images[split]
        labels = iter(image.label for image in chosen)
        for pixels in decode_pngs([image.path for image in chosen], self.resolution, self.workers):
            for row in pixels:  # (N²,) uint8
                yield row, next(labels)
