"""Pathfinder generator (Linsley et al., NeurIPS 2018, "Learning long-range spatial dependencies with horizontal
gated recurrent units"), with the settings of LRA's release (Tay et al., 2021, arXiv 2011.04006), fast: NumPy +
Pillow only.

The original generator's procedure, which the docstrings below refer to (M: the occupancy map, 0..1; a paddle:
a short dash of length L with a margin m around it):

A contour (snake) of n paddles
  1. Seed paddle: a whole-degree angle, and a start pixel drawn uniformly among those whose footprint touches
     no pixel with M > 0.3.
  2. Grow one paddle at a time: look ahead by L + 2m to a point Q; the candidates on the circle of radius L + m
     around Q weigh cos²(min(continuity · turn, π/2)) × (1 − the most of M within m of them); draw one (a dead
     end if they weigh below 1e-4 in all), accept its paddle if max(M + its margin) < 1.8 (3 tries), then add
     the previous paddle's margin to M.
One image
  1. Two target contours seeded seed_distance apart, grown alternately on the shared M; a failure restarts both.
  2. Targets get paddle_contrast × snake_contrast, distractors snake_contrast.
  3. Distractor contours of contour_length // 3 paddles, each left out if it does not fit.
  4. Markers on one target's start and, by the label, on its own end (1) or on the other target's end (0).
  5. Paddles and markers combined by pixel-wise max, stretched to 0..255, saved as PNG.
Output: the release's layout, pathfinder{N}/curv_*/imgs/<k>/sample_<i>.png and metadata/<k>.npy text lines
(README, "Pathfinder and Path-X").

Speed comes from drawing each paddle shape once per process (pathfinder_stamps), keeping M as bytes that the
hot loop reads element-wise and NumPy updates window-wise, scoring only the candidates a turn can reach, drawing
strokes only for contours that are kept, and fixed-size seeded shards written by a process pool. Images depend
only on (seed, resolution, difficulty, shard_size), never on the number of workers.
"""

from __future__ import annotations

import bisect
import itertools
import math
import multiprocessing
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from lra.data.checks import check_int
from lra.data.generate.pathfinder_stamps import (
    FULL,
    Paddle,
    candidates,
    dilate,
    head_offset,
    marker,
    move,
    paddle_stamp,
    reverse,
    seed_angle,
    seed_footprint,
    stamp_half,
)

# Bumped whenever the images for the same arguments would change.
GENERATOR_VERSION = 1
# Contour length (paddles per target snake) -> the release's folder name for that difficulty.
DIFFICULTIES: dict[int, str] = {6: "curv_baseline", 9: "curv_contour_length_9", 14: "curv_contour_length_14"}
RESOLUTIONS = (32, 64, 128, 256)

# The release's retry limits: 3 draws per paddle, 5 attempts per distractor snake.
PADDLE_TRIES = 3
DISTRACTOR_TRIES = 5
# The original's thresholds in uint8 levels (1.0 = 255), so tests on integer levels are exact:
# a paddle fits if max(M + margin) < 1.8; a seed pixel is free if M <= 0.3; weights below 1e-4 are a dead end.
ACCEPT_BELOW = round(1.8 * FULL)  # 459
FREE_UP_TO = math.floor(0.3 * FULL)  # 76
MIN_TOTAL_WEIGHT = 1e-4 * FULL
# Turns the continuity rules out get weight cos²(π/2) ≈ 3.7e-33 in floating point rather than 0; such
# candidates are left out (the release would draw one with probability ~1e-31 per step).
NEGLIGIBLE_WEIGHT = 1e-12
# A distractor's seed gives up when less than this fraction of the image is free.
MIN_FREE_FRACTION = 0.01
# Target pairs restart from scratch on any failure; this many failures in a row means the parameters cannot work.
MAX_PAIR_TRIES = 100_000
# Uniform draws are taken from the generator in blocks of this many.
_DRAW_BLOCK = 1024


@dataclass(frozen=True)
class PathfinderParams:
    """The release's settings for one resolution (the original generator's parameters at that image size).

    margins: the paddle margin is drawn uniformly from these once per image (only 128 px has two).
    """

    resolution: int
    padding: int
    paddle_length: int
    thickness: float
    margins: tuple[int, ...]
    seed_distance: int
    marker_radius: float
    continuity: float
    snake_contrast: float
    paddle_contrast: float
    distractor_budget: int


_PARAMS = {
    32: PathfinderParams(32, 1, 2, 0.5, (1,), 7, 1.5, 1.0, 2.0, 0.75, 20),
    64: PathfinderParams(64, 1, 5, 1.0, (1,), 12, 2.5, 1.8, 0.8, 1.0, 22),
    128: PathfinderParams(128, 1, 5, 1.5, (2, 3), 20, 3.0, 1.8, 0.9, 1.0, 35),
    256: PathfinderParams(256, 22, 5, 2.0, (3,), 27, 5.0, 1.8, 1.0, 1.0, 30),
}


def params_for(resolution: int) -> PathfinderParams:
    """The release's parameters for `resolution` (one of RESOLUTIONS)."""
    if resolution not in _PARAMS:
        raise ValueError(f"Pathfinder resolution must be one of {RESOLUTIONS}, got {resolution!r}")
    return _PARAMS[resolution]


@dataclass(frozen=True)
class PathfinderSample:
    """One generated image and what tests need to check it.

    image: (N, N) uint8, stretched to 0..255. markers: ((row, col), (row, col)), first the one on the chosen
    contour's start. starts: the two target contours' starts (the first seeded in the central box).
    peaks: brightest value of each layer before the stretch ("target", "distractor", "marker"; 0.0 if empty).
    """

    image: np.ndarray
    label: int
    markers: tuple[tuple[int, int], tuple[int, int]]
    starts: tuple[tuple[int, int], tuple[int, int]]
    margin: int
    num_distractors: int
    peaks: dict[str, float]


class _Draws:
    """Uniform draws in [0, 1) from a numpy Generator, taken in blocks to keep per-draw cost low."""

    def __init__(self, rng: np.random.Generator) -> None:
        blocks = (rng.random(_DRAW_BLOCK).tolist() for _ in itertools.repeat(None))
        self.uniform: Callable[[], float] = itertools.chain.from_iterable(blocks).__next__

    def below(self, n: int) -> int:
        """An integer uniform over 0 .. n - 1."""
        return int(self.uniform() * n)


class _Choice(NamedTuple):
    """A growth candidate: its flat and (dy, dx) offset from the look-ahead point Q, its direction from Q, the
    paddle drawn from it back towards Q, and `strong`: (flat offset, limit) where the margin is >= 1.8 - 1, so
    the paddle fits iff M[head + offset] < limit at each (M <= 1 elsewhere cannot reach 1.8)."""

    offset: int
    dy: int
    dx: int
    angle: float
    paddle: Paddle
    strong: tuple[tuple[int, int], ...]


class _Step(NamedTuple):
    """Growth from a pivot along one direction: the look-ahead (D·sin, D·cos), D = L + 2m, and the candidates
    the turn allows (turn weight cos²(min(continuity·δ, π/2)) above NEGLIGIBLE_WEIGHT), as (weight, flat offset
    into the crowding plane) pairs and as choices."""

    dy: float
    dx: float
    weighted: tuple[tuple[float, int], ...]
    choices: tuple[_Choice, ...]


class _Geometry:
    """Everything fixed for one (parameters, margin): padded array layout, growth steps, seed tables.

    The occupancy state is two planes of the image padded by `pad` pixels on every side (so windows and
    candidate neighbourhoods need no bounds checks), flattened into one byte array: M (0 outside the image,
    which the original ignores) and its crowding, the maximum of M within radius m (full outside the image, so
    candidates there get weight 0, as if removed). Coordinates in the procedure are image coordinates (the
    original's rounding depends on them); `pad` shifts them to index the planes.
    """

    def __init__(self, params: PathfinderParams, margin: int) -> None:
        length, thickness = params.paddle_length, params.thickness
        self.params, self.margin = params, margin
        self.size = size = params.resolution
        self.half = stamp_half(length, thickness, margin)
        self.span = 2 * self.half + 1
        self.look_ahead = length + 2 * margin
        self.pad = pad = max(self.half + margin, 2 * length + 4 * margin + 2) + 1
        self.stride = stride = size + 2 * pad
        self.plane = stride * stride
        self.origin = pad * stride + pad  # flat index of image pixel (0, 0)
        circle = candidates(length, thickness, margin)
        self._choices = []
        for (dy, dx), angle, head in zip(circle.offsets.tolist(), circle.angles.tolist(), circle.heads, strict=True):
            paddle = paddle_stamp(length, thickness, margin, head)
            strong = tuple(
                ((row - self.half) * stride + col - self.half, ACCEPT_BELOW - int(paddle.mask[row, col]))
                for row, col in np.argwhere(paddle.mask >= ACCEPT_BELOW - FULL).tolist()
            )
            self._choices.append(_Choice(dy * stride + dx, dy, dx, angle, paddle, strong))
        self._circle_angles = circle.angles
        self.steps: dict[float, _Step] = {}
        # Empty image: M full on the padding border only; crowding as if M were full outside the image too.
        occupancy = np.zeros((stride, stride), dtype=np.uint8)
        occupancy[pad : pad + size, pad : pad + size] = FULL
        inner = slice(pad + params.padding, pad + size - params.padding)
        occupancy[inner, inner] = 0
        everywhere = occupancy.copy()
        everywhere[:pad] = everywhere[pad + size :] = everywhere[:, :pad] = everywhere[:, pad + size :] = FULL
        self.empty = np.stack([occupancy, dilate(everywhere, margin)]).tobytes()
        self._seed_footprints: dict[int, tuple[list[list[int]] | None]] = {}
        # The paddle of a seed at whole degree d is seed_paddles[d + 180].
        self.seed_paddles = [
            paddle_stamp(length, thickness, margin, head_offset(seed_angle(degrees), length, thickness, margin))
            for degrees in range(-180, 180)
        ]

    def step(self, angle: float) -> _Step:
        """The growth step along `angle` (cached in `steps`: angles come from a small set)."""
        step = self.steps.get(angle)
        if step is None:
            turn = np.abs(self._circle_angles - angle)
            turn = np.minimum(turn, 2 * np.pi - turn)
            weights = np.maximum(np.cos(np.minimum(turn * self.params.continuity, np.pi / 2)), 0.0) ** 2
            kept = [index for index, weight in enumerate(weights.tolist()) if weight > NEGLIGIBLE_WEIGHT]
            step = _Step(
                dy=self.look_ahead * math.sin(angle),
                dx=self.look_ahead * math.cos(angle),
                weighted=tuple((float(weights[index]), self.plane + self._choices[index].offset) for index in kept),
                choices=tuple(self._choices[index] for index in kept),
            )
            self.steps[angle] = step
        return step

    def inside(self, point: tuple[int, int]) -> bool:
        """Whether image pixel `point` lies in the image."""
        return 0 <= point[0] < self.size and 0 <= point[1] < self.size

    def window(self, point: tuple[int, int]) -> tuple[slice, slice]:
        """The padded-array window of a paddle stroke with its tail at image pixel `point`."""
        top = point[0] + self.pad - self.half
        left = point[1] + self.pad - self.half
        return slice(top, top + self.span), slice(left, left + self.span)

    def _touched(self, occupied: np.ndarray, footprint: list[list[int]]) -> np.ndarray:
        """(N, N) bool: pixels p with p + f in `occupied` for some footprint offset f (outside = unoccupied)."""
        reach, size = self.half + 1, self.size
        padded = np.zeros((size + 2 * reach, size + 2 * reach), dtype=bool)
        padded[reach : reach + size, reach : reach + size] = occupied
        touched = np.zeros((size, size), dtype=bool)
        for dy, dx in footprint:
            touched |= padded[reach + dy : reach + dy + size, reach + dx : reach + dx + size]
        return touched

    def seed_footprint(self, degrees: int) -> list[list[int]] | None:
        """The seed footprint at `degrees`, or None if the release could never seed at that angle.

        The original dilates with OpenCV, which gives a pixel whose footprint lies wholly outside the image the
        value -DBL_MAX; its availability test then reports no free pixel at all. So an angle whose footprint
        misses one of the four closed quadrants around the tail never seeds: at 32 px only 30 of 360 angles
        can. This shapes which angles seeds take and how many distractors fit (statistics the tests compare with
        the original's).
        """
        usable = self._seed_footprints.get(degrees)
        if usable is None:
            footprint = seed_footprint(self.params.paddle_length, self.params.thickness, self.margin, degrees).tolist()
            everywhere = np.ones((self.size, self.size), dtype=bool)
            usable = (footprint if self._touched(everywhere, footprint).all() else None,)
            self._seed_footprints[degrees] = usable
        return usable[0]

    def free_tails(self, occupied: np.ndarray, footprint: list[list[int]]) -> np.ndarray:
        """Flat image indices of the tails whose seed `footprint` avoids `occupied` ((N, N) bool)."""
        return np.flatnonzero(~self._touched(occupied, footprint))

    @cached_property
    def first_seeds(self) -> list[tuple[int, np.ndarray]]:
        """(degrees, free tails) for the first target seed, for every angle with a free tail: only the central
        box [2·d, N − 2·d) is free then, so this depends on the angle alone."""
        box = 2 * self.params.seed_distance
        occupied = np.ones((self.size, self.size), dtype=bool)
        occupied[box : self.size - box, box : self.size - box] = False
        seeds = []
        for degrees in range(-180, 180):
            footprint = self.seed_footprint(degrees)
            tails = self.free_tails(occupied, footprint) if footprint is not None else []
            if len(tails) > 0:
                seeds.append((degrees, tails))
        return seeds


@cache
def _geometry(params: PathfinderParams, margin: int) -> _Geometry:
    return _Geometry(params, margin)


class _Snake:
    """A growing contour: pivot and direction of the next step, its tips, and its paddles (tail, stamps); the
    newest paddle (`last`, drawn from `end`) is added to M only once the next one is placed."""

    __slots__ = ("angle", "end", "last", "paddles", "pivot", "start")

    def __init__(self, tail: tuple[int, int], angle: float, pivot: tuple[int, int], paddle: Paddle) -> None:
        self.start = self.end = tail
        self.angle = angle
        self.pivot = pivot
        self.paddles = [(tail, paddle)]
        self.last = paddle


class _Painter:
    """The occupancy state of one image being drawn (see _Geometry), as bytes with a (2, N + 2P, N + 2P) view."""

    def __init__(self, geometry: _Geometry, draws: _Draws) -> None:
        self.geo = geometry
        self.draws = draws
        self.state = bytearray(geometry.empty)
        self.planes = np.frombuffer(self.state, dtype=np.uint8).reshape(2, geometry.stride, geometry.stride)
        self.changed = False

    def clear(self) -> None:
        """Back to an empty image (only the padding border occupied)."""
        if self.changed:
            self.state[:] = self.geo.empty
            self.changed = False

    def occupy(self, tail: tuple[int, int], paddle: Paddle) -> None:
        """M = max(M, margin mask of `paddle` at `tail`) and the same for its crowding, on the image only.

        (A crowding pixel within m of the image edge already sees the occupied padding border.)"""
        geo = self.geo
        grow = geo.margin
        top, left = tail[0] + geo.pad - geo.half - grow, tail[1] + geo.pad - geo.half - grow
        span = geo.span + 2 * grow
        low, high = geo.pad, geo.pad + geo.size
        if low <= top and low <= left and top + span <= high and left + span <= high:
            region = self.planes[:, top : top + span, left : left + span]
            np.maximum(region, paddle.marks, out=region)
        else:
            rows = slice(max(top, low), min(top + span, high))
            cols = slice(max(left, low), min(left + span, high))
            part = paddle.marks[:, rows.start - top : rows.stop - top, cols.start - left : cols.stop - left]
            region = self.planes[:, rows, cols]
            np.maximum(region, part, out=region)
        self.changed = True

    def extend(self, snake: _Snake) -> bool:
        """Grow `snake` by one paddle (module docstring, "A contour", step 2); False if it cannot grow."""
        geo = self.geo
        dy, dx, weighted, choices = geo.steps.get(snake.angle) or geo.step(snake.angle)
        pivot = snake.pivot
        look_y, look_x = math.ceil(pivot[0] + dy), math.ceil(pivot[1] + dx)
        base = look_y * geo.stride + look_x + geo.origin
        state = self.state
        cumulative = list(itertools.accumulate([weight * (FULL - state[base + at]) for weight, at in weighted]))
        total = cumulative[-1]
        if total < MIN_TOTAL_WEIGHT:
            return False
        uniform = self.draws.uniform
        for _ in range(PADDLE_TRIES):
            index = bisect.bisect_right(cumulative, uniform() * total)
            if index == len(cumulative):  # u·total rounded up to total
                index = bisect.bisect_left(cumulative, total)
            offset, choice_dy, choice_dx, angle, paddle, strong = choices[index]
            head = base + offset
            for at, limit in strong:
                if state[head + at] >= limit:
                    break
            else:
                self.occupy(snake.end, snake.last)
                tail = (look_y + choice_dy, look_x + choice_dx)
                snake.paddles.append((tail, paddle))
                snake.last = paddle
                snake.end = tail
                snake.pivot = (look_y, look_x)
                snake.angle = angle
                return True
        return False

    def start_snake(self, tail: tuple[int, int], degrees: int) -> _Snake | None:
        """A seed paddle from `tail` at `degrees`; None if its head or pivot falls outside the image."""
        geo, params = self.geo, self.geo.params
        angle = seed_angle(degrees)
        head = move(tail, angle, params.paddle_length)
        pivot = move(head, reverse(angle), params.paddle_length + geo.margin)
        if not (geo.inside(head) and geo.inside(pivot)):
            return None
        return _Snake(tail, angle, pivot, geo.seed_paddles[degrees + 180])

    def seed_distractor(self) -> _Snake | None:
        """A distractor's seed paddle at a uniform free pixel (module docstring, "A contour", step 1), or None."""
        geo, draws = self.geo, self.draws
        pad, size = geo.pad, geo.size
        occupied = None
        for _ in range(PADDLE_TRIES):
            degrees = draws.below(360) - 180
            footprint = geo.seed_footprint(degrees)
            if footprint is None:
                return None
            if occupied is None:
                occupied = self.planes[0, pad : pad + size, pad : pad + size] > FREE_UP_TO
                if size * size - np.count_nonzero(occupied) < MIN_FREE_FRACTION * size * size:
                    return None
                occupied[0] = occupied[-1] = occupied[:, 0] = occupied[:, -1] = True
            tails = geo.free_tails(occupied, footprint)
            if len(tails) == 0:
                return None
            snake = self.start_snake(divmod(int(tails[draws.below(len(tails))]), size), degrees)
            if snake is not None:
                return snake
        return None

    def target_pair(self, contour_length: int) -> tuple[_Snake, _Snake] | None:
        """Seed and grow the two target snakes alternately (module docstring, "One image", step 1); None on failure."""
        geo, draws = self.geo, self.draws
        first = second = None
        # The release draws the angle over all whole degrees and restarts the pair when it has no free tail;
        # drawing among the angles that have one is the same, minus the wasted restarts.
        for _ in range(PADDLE_TRIES):
            degrees, tails = geo.first_seeds[draws.below(len(geo.first_seeds))]
            first = self.start_snake(divmod(int(tails[draws.below(len(tails))]), geo.size), degrees)
            if first is not None:
                break
        if first is None:
            return None
        distance = geo.params.seed_distance
        for _ in range(PADDLE_TRIES):
            degrees = draws.below(360) - 180
            direction = draws.below(360) * math.pi / 180
            tail = (
                round(first.start[0] + distance * math.sin(direction)),
                round(first.start[1] + distance * math.cos(direction)),
            )
            second = self.start_snake(tail, degrees)
            if second is not None:
                break
        if second is None:
            return None
        for _ in range(contour_length - 1):
            if not (self.extend(first) and self.extend(second)):
                return None
        # As in the release, only the second snake's last margin is added (the first one's never is).
        self.occupy(second.end, second.last)
        return first, second

    def distractor(self, length: int) -> _Snake | None:
        """Add one distractor snake of `length` paddles; None (M unchanged) if it fails."""
        snake = self.seed_distractor()
        if snake is None:
            return None
        saved = bytes(self.state)
        if all(self.extend(snake) for _ in range(length - 1)):
            self.occupy(snake.end, snake.last)
            return snake
        self.state[:] = saved
        return None

    def paint(self, snakes: list[_Snake]) -> np.ndarray:
        """(N, N) uint8 layer: pixel-wise max of the strokes of all paddles of `snakes`."""
        geo = self.geo
        layer = np.zeros((geo.stride, geo.stride), dtype=np.uint8)
        for snake in snakes:
            for tail, paddle in snake.paddles:
                region = layer[geo.window(tail)]
                np.maximum(region, paddle.stroke, out=region)
        return layer[geo.pad : geo.pad + geo.size, geo.pad : geo.pad + geo.size]


def _check_contour(contour_length: int, label: int) -> None:
    if not isinstance(contour_length, int) or isinstance(contour_length, bool) or contour_length < 3:
        raise ValueError(f"contour_length must be an integer >= 3 (levels use 6, 9, 14), got {contour_length!r}")
    if label not in (0, 1):
        raise ValueError(f"label must be 0 or 1, got {label!r}")


def _render(draws: _Draws, params: PathfinderParams, contour_length: int, label: int) -> PathfinderSample:
    """One image by the "One image" procedure (module docstring)."""
    margin = params.margins[draws.below(len(params.margins))]
    painter = _Painter(_geometry(params, margin), draws)
    for _ in range(MAX_PAIR_TRIES):
        pair = painter.target_pair(contour_length)
        if pair is not None:
            break
        painter.clear()
    else:
        raise RuntimeError(f"{params}: no target pair of length {contour_length} in {MAX_PAIR_TRIES} tries")
    distractor_length = contour_length // 3
    distractors = []
    for _ in range(params.distractor_budget // distractor_length):
        for _ in range(DISTRACTOR_TRIES):
            snake = painter.distractor(distractor_length)
            if snake is not None:
                distractors.append(snake)
                break

    chosen = draws.below(2)
    origin = pair[chosen].start
    terminal = pair[chosen].end if label == 1 else pair[1 - chosen].end
    size = params.resolution
    markers = np.zeros((size, size), dtype=np.uint8)
    for point in (origin, terminal):
        window, disk = marker(size, point, params.marker_radius)
        np.maximum(markers[window], disk, out=markers[window])
    layers = {
        "target": painter.paint(list(pair)) * (params.paddle_contrast * params.snake_contrast / FULL),
        "distractor": painter.paint(distractors) * (params.snake_contrast / FULL),
        "marker": markers * (1.0 / FULL),
    }
    value = np.maximum(np.maximum(layers["target"], layers["distractor"]), layers["marker"])  # (N, N)
    image = np.floor(value * (FULL / value.max()) + 0.5).astype(np.uint8)
    return PathfinderSample(
        image=image,
        label=label,
        markers=(origin, terminal),
        starts=(pair[0].start, pair[1].start),
        margin=margin,
        num_distractors=len(distractors),
        peaks={name: float(layer.max()) for name, layer in layers.items()},
    )


def render_pathfinder(
    rng: np.random.Generator, params: PathfinderParams, contour_length: int, label: int
) -> PathfinderSample:
    """One image with its markers and layer peaks (see PathfinderSample); randomness comes from `rng` only."""
    _check_contour(contour_length, label)
    return _render(_Draws(rng), params, contour_length, label)


def generate_image(rng: np.random.Generator, params: PathfinderParams, contour_length: int, label: int) -> np.ndarray:
    """One (N, N) uint8 Pathfinder image: markers joined by one contour if `label` is 1, not if 0."""
    return render_pathfinder(rng, params, contour_length, label).image


def metadata_line(
    shard: int, index: int, label: int, params: PathfinderParams, contour_length: int, margin: int
) -> str:
    """One line of the release's metadata/<shard>.npy text file (module docstring, "Output"), without newline."""
    return (
        f"imgs/{shard} sample_{index}.png {index} {label} {params.continuity} {contour_length} "
        f"{contour_length // 3} {params.paddle_length} {params.thickness} {margin} 1"
    )


def _shard_rng(seed: int, resolution: int, difficulty: int, shard: int) -> np.random.Generator:
    """The generator of one shard: a stable function of (seed, resolution, difficulty, shard) only."""
    return np.random.default_rng(np.random.SeedSequence([seed, resolution, difficulty, shard]))


def _write_shard(task: tuple[Path, int, int, int, int, int]) -> int:
    """Write shard `k`'s images, then its metadata file; return the number of images written."""
    level, resolution, difficulty, seed, shard, count = task
    params = params_for(resolution)
    draws = _Draws(_shard_rng(seed, resolution, difficulty, shard))
    folder = level / "imgs" / str(shard)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for index in range(count):
        label = draws.below(2)
        sample = _render(draws, params, difficulty, label)
        Image.fromarray(sample.image).save(folder / f"sample_{index}.png", compress_level=1)
        lines.append(metadata_line(shard, index, label, params, difficulty, sample.margin) + "\n")
    (level / "metadata").mkdir(parents=True, exist_ok=True)
    with open(level / "metadata" / f"{shard}.npy", "w", encoding="ascii", newline="\n") as file:
        file.writelines(lines)
    return count


def generate_pathfinder(
    out_dir: str | os.PathLike,
    resolution: int,
    difficulty: int,
    num_images: int,
    seed: int = 0,
    workers: int | None = None,
    shard_size: int = 1000,
) -> Path:
    """Write num_images images in the release's layout; return out_dir/pathfinder{resolution}/{level name}.

    Shard k holds images k·shard_size onwards as imgs/<k>/sample_<i>.png (i counted within the shard) with
    metadata/<k>.npy as text lines (module docstring, "Output"). Each shard is seeded from (seed, resolution,
    difficulty, k), so the files do not depend on `workers` (default: all cores).
    """
    params_for(resolution)
    if difficulty not in DIFFICULTIES:
        raise ValueError(
            f"Pathfinder difficulty (contour length) must be one of {sorted(DIFFICULTIES)}, got {difficulty!r}"
        )
    check_int("num_images", num_images, 1)
    check_int("seed", seed, 0)
    check_int("shard_size", shard_size, 1)
    if workers is None:
        workers = os.cpu_count() or 1
    check_int("workers", workers, 1)
    level = Path(out_dir) / f"pathfinder{resolution}" / DIFFICULTIES[difficulty]
    level.mkdir(parents=True, exist_ok=True)
    tasks = [
        (level, resolution, difficulty, seed, shard, min(shard_size, num_images - shard * shard_size))
        for shard in range(-(-num_images // shard_size))
    ]
    processes = min(workers, len(tasks))
    if processes == 1:
        for task in tasks:
            _write_shard(task)
        return level
    with multiprocessing.get_context().Pool(processes) as pool:
        for _ in pool.imap_unordered(_write_shard, tasks):
            pass
    return level
