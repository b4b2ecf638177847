"""Pathfinder's drawing primitives (Linsley et al., NeurIPS 2018), cached.

Every paddle the generator draws is one of a few hundred shapes: its 2x-canvas head offset is an integer, so a
paddle (and its margin mask) is fully determined by (length, thickness, margin, head offset). Each shape is drawn
once per process with Pillow at 2x and shrunk with Lanczos, exactly as the original draws every single paddle, and
reused. Values are kept as uint8 levels (0..255 = 0..1) so occupancy tests are exact integer comparisons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
from PIL import Image, ImageDraw

# Strokes and markers are drawn at ANTIALIAS times the resolution, then shrunk with a Lanczos filter.
ANTIALIAS = 2
# Level of a fully occupied / fully lit pixel (1.0).
FULL = 255


def move(point: tuple[int, int], angle: float, distance: float) -> tuple[int, int]:
    """`point` moved by `distance` along `angle` (rows point down: (sin, cos)), each coordinate rounded up."""
    return (
        math.ceil(point[0] + distance * math.sin(angle)),
        math.ceil(point[1] + distance * math.cos(angle)),
    )


def seed_angle(degrees: int) -> float:
    """A seed's angle in radians from whole degrees, computed as the original does (degrees · π / 180)."""
    return degrees * math.pi / 180


def reverse(angle: float) -> float:
    """The opposite direction, kept in [-pi, pi)."""
    return angle + math.pi if angle < 0 else angle - math.pi


def disk_offsets(radius: float) -> np.ndarray:
    """(K, 2) integer offsets (dy, dx) with dy² + dx² <= radius², row-major."""
    reach = math.floor(radius)
    dy, dx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    inside = dy**2 + dx**2 <= radius**2
    return np.stack([dy[inside], dx[inside]], axis=1)


def dilate(levels: np.ndarray, radius: int) -> np.ndarray:
    """Grey dilation of a non-negative 2-D image by a disk of `radius` (pixels beyond the edge count as 0)."""
    height, width = levels.shape
    padded = np.pad(levels, radius)
    out = np.zeros_like(levels)
    for dy, dx in disk_offsets(radius) + radius:
        np.maximum(out, padded[dy : dy + height, dx : dx + width], out=out)
    return out


def _shrink(levels: np.ndarray, size: int) -> np.ndarray:
    """Pillow's Lanczos resize of a uint8 image to (size, size), as uint8 levels."""
    return np.asarray(Image.fromarray(levels).resize((size, size), Image.Resampling.LANCZOS))


def stamp_half(length: int, thickness: float, margin: int) -> int:
    """Half-width H of a paddle stamp: stamps are (2H + 1)² with the paddle's tail at the centre."""
    return length + math.ceil(thickness) + margin


def head_offset(angle: float, length: int, thickness: float, margin: int) -> tuple[int, int]:
    """Integer head of the 2x stroke relative to its tail at the canvas centre (the only way `angle` matters)."""
    centre = stamp_half(length, thickness, margin) * ANTIALIAS
    head = move((centre, centre), angle, length * ANTIALIAS)
    return head[0] - centre, head[1] - centre


@dataclass(frozen=True)
class Paddle:
    """The cached stamps of one paddle shape, tail at the centre, as read-only uint8 level arrays.

    stroke: (2H + 1)² the anti-aliased line. mask: (2H + 1)² its margin mask.
    marks: (2, 2H + 2m + 1, 2H + 2m + 1) what the paddle adds to the occupancy planes: [0] the margin mask
    (zero-padded by m), [1] its maximum within radius m (the "max of M within radius m" of growth weights).
    """

    stroke: np.ndarray
    mask: np.ndarray
    marks: np.ndarray


@cache
def paddle_stamp(length: int, thickness: float, margin: int, head: tuple[int, int]) -> Paddle:
    """One paddle: a line of width round(2·thickness) from the centre of a 2x canvas to `head` (see head_offset),
    and its margin mask, that line grown by a disk of radius 2·margin; both shrunk with Lanczos (as the original)."""
    half = stamp_half(length, thickness, margin)
    centre = half * ANTIALIAS
    canvas = Image.new("L", (2 * centre + 1, 2 * centre + 1), 0)
    ImageDraw.Draw(canvas).line(
        [(centre, centre), (centre + head[1], centre + head[0])], fill=FULL, width=round(thickness * ANTIALIAS)
    )
    line = np.asarray(canvas)  # (2·2H + 1, 2·2H + 1)
    stroke = _shrink(line, 2 * half + 1)
    mask = _shrink(dilate(line, margin * ANTIALIAS), 2 * half + 1)
    padded = np.pad(mask, margin)
    marks = np.stack([padded, dilate(padded, margin)])
    for array in (stroke, mask, marks):
        array.flags.writeable = False
    return Paddle(stroke, mask, marks)


@cache
def seed_footprint(length: int, thickness: float, margin: int, degrees: int) -> np.ndarray:
    """(K, 2) offsets from a seed's tail that must be free (M <= 0.3) to start a snake there at `degrees`.

    The original dilates the occupancy with the fully-on pixels of the paddle's margin mask, drawn in a
    (2(L + m) + 1)² structuring element with the tail one pixel below and right of its anchor: so the footprint
    is those pixels, cropped to that element, shifted by (+1, +1). We reproduce that.
    """
    mask = paddle_stamp(length, thickness, margin, head_offset(seed_angle(degrees), length, thickness, margin)).mask
    half = stamp_half(length, thickness, margin)
    offsets = np.argwhere(mask == FULL) - half  # relative to the tail
    reach = length + margin
    keep = np.all((offsets >= -reach - 1) & (offsets <= reach - 1), axis=1)
    return offsets[keep] + 1


@dataclass(frozen=True)
class Candidates:
    """The pixels a snake may grow to: the circle of radius L + m around the look-ahead point Q.

    offsets: (n, 2) unique (dy, dx) from Q, sorted; angles: (n,) direction of each from Q;
    heads: (n,) 2x head offset of the paddle drawn from each candidate back towards Q.
    """

    offsets: np.ndarray
    angles: np.ndarray
    heads: tuple[tuple[int, int], ...]


@cache
def candidates(length: int, thickness: float, margin: int) -> Candidates:
    """Candidate circle for one (L, t, m): points about one pixel of arc apart, rounded down to pixels, unique."""
    radius = length + margin
    step = 360.0 / (2 * radius * math.pi)
    angles = np.arange(0.0, 360.0, step) * np.pi / 180
    points = np.stack([np.floor(radius * np.sin(angles)), np.floor(radius * np.cos(angles))], axis=1)
    offsets = np.unique(points.astype(np.int64), axis=0)
    directions = np.arctan2(offsets[:, 0], offsets[:, 1]).astype(np.float64)
    heads = tuple(head_offset(reverse(float(a)), length, thickness, margin) for a in directions)
    return Candidates(offsets=offsets, angles=directions, heads=heads)


@lru_cache(maxsize=4096)
def marker(size: int, centre: tuple[int, int], radius: float) -> tuple[tuple[slice, slice], np.ndarray]:
    """A marker disk of `radius` at pixel `centre` of a size² image: (window, levels) with levels (h, w) uint8
    (read-only, cached).

    The original draws the disk on a whole 2x image and shrinks it with Lanczos; we do the same on a window
    around the disk that is wide enough (or ends at the image edge) for the result to be identical.
    """
    reach = math.ceil(radius) + 8
    rows = (max(centre[0] - reach, 0), min(centre[0] + reach + 1, size))
    cols = (max(centre[1] - reach, 0), min(centre[1] + reach + 1, size))
    scaled = radius * ANTIALIAS
    dy = np.arange(rows[0] * ANTIALIAS, rows[1] * ANTIALIAS)[:, None] - centre[0] * ANTIALIAS
    dx = np.arange(cols[0] * ANTIALIAS, cols[1] * ANTIALIAS)[None, :] - centre[1] * ANTIALIAS
    disk = np.where(dx**2 + dy**2 <= scaled**2, FULL, 0).astype(np.uint8)  # (2h, 2w)
    shrunk = np.asarray(Image.fromarray(disk).resize((cols[1] - cols[0], rows[1] - rows[0]), Image.Resampling.LANCZOS))
    shrunk.flags.writeable = False
    return (slice(*rows), slice(*cols)), shrunk
