"""Log-log line plots drawn with Pillow (the harness has no matplotlib): the figures of `lra bench`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

# Tableau's ten colours: distinguishable, and readable on white.
PALETTE = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)
WHITE, BLACK, GRID = (255, 255, 255), (0, 0, 0), (225, 225, 225)
MARGIN = {"left": 70, "right": 15, "top": 30, "bottom": 45}  # around each panel's plot area, in pixels
LEGEND_HEIGHT = 30


@dataclass
class Panel:
    """One log-log plot: ``series`` maps a line's name to its (x, y) points; y = None leaves a gap."""

    title: str
    xlabel: str
    ylabel: str
    series: dict[str, list[tuple[float, float | None]]] = field(default_factory=dict)


def log_ticks(lo: float, hi: float) -> list[float]:
    """Tick values for a log axis over [lo, hi]: powers of ten, with 2× and 5× them when the span is short."""
    if not 0 < lo <= hi:
        raise ValueError(f"a log axis needs 0 < lo <= hi, got lo={lo}, hi={hi}")
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    for mantissas in ((1.0,), (1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)):
        ticks = [m * 10.0**e for e in range(first, last + 1) for m in mantissas]
        ticks = [t for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
        if len(ticks) >= 3:
            return ticks
    return ticks


def tick_label(value: float) -> str:
    """A short label: whole numbers below 10⁷ in full (16384, 10000), others in 3 significant digits."""
    if 1 <= value < 1e7 and value == int(value):
        return str(int(value))
    return f"{value:.3g}"


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # scalable when Pillow has FreeType
    except TypeError:  # pragma: no cover (Pillow < 10.1)
        return ImageFont.load_default()


def _range(values: Sequence[float]) -> tuple[float, float]:
    """The axis range in log10 units, padded by 5% (a single value gets a factor of 2 either side)."""
    lo, hi = math.log10(min(values)), math.log10(max(values))
    if hi - lo < 1e-9:
        return lo - math.log10(2), hi + math.log10(2)
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def _draw_panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], panel: Panel, colours: dict) -> None:
    left, top, right, bottom = box
    x0, y0 = left + MARGIN["left"], top + MARGIN["top"]
    x1, y1 = right - MARGIN["right"], bottom - MARGIN["bottom"]
    font, small = _font(14), _font(12)
    draw.text(((x0 + x1) / 2, top + 8), panel.title, fill=BLACK, font=font, anchor="mt")
    draw.text(((x0 + x1) / 2, bottom - 4), panel.xlabel, fill=BLACK, font=small, anchor="mb")
    draw.text((left + 4, top + 8), panel.ylabel, fill=BLACK, font=small, anchor="lt")
    points = [(x, y) for line in panel.series.values() for x, y in line if y is not None and y > 0 and x > 0]
    if not points:
        draw.rectangle((x0, y0, x1, y1), outline=BLACK)
        draw.text(((x0 + x1) / 2, (y0 + y1) / 2), "no data", fill=BLACK, font=font, anchor="mm")
        return
    (lx0, lx1), (ly0, ly1) = _range([x for x, _ in points]), _range([y for _, y in points])

    def to_pixel(x: float, y: float) -> tuple[float, float]:
        px = x0 + (math.log10(x) - lx0) / (lx1 - lx0) * (x1 - x0)
        py = y1 - (math.log10(y) - ly0) / (ly1 - ly0) * (y1 - y0)
        return px, py

    xs = sorted({x for x, _ in points})
    x_ticks = xs if len(xs) <= 8 else log_ticks(10**lx0, 10**lx1)
    for x in x_ticks:
        px, _ = to_pixel(x, 10**ly0)
        draw.line((px, y0, px, y1), fill=GRID)
        draw.line((px, y1, px, y1 + 4), fill=BLACK)
        draw.text((px, y1 + 6), tick_label(x), fill=BLACK, font=small, anchor="mt")
    for y in log_ticks(10**ly0, 10**ly1):
        _, py = to_pixel(10**lx0, y)
        draw.line((x0, py, x1, py), fill=GRID)
        draw.line((x0 - 4, py, x0, py), fill=BLACK)
        draw.text((x0 - 6, py), tick_label(y), fill=BLACK, font=small, anchor="rm")
    draw.rectangle((x0, y0, x1, y1), outline=BLACK)
    for name, line in panel.series.items():
        segment: list[tuple[float, float]] = []
        for x, y in [*sorted(line, key=lambda p: p[0]), (math.inf, None)]:
            if y is not None and y > 0 and x < math.inf:
                segment.append(to_pixel(x, y))
                continue
            if len(segment) > 1:
                draw.line(segment, fill=colours[name], width=2)
            for px, py in segment:
                draw.ellipse((px - 3, py - 3, px + 3, py + 3), fill=colours[name])
            segment = []


def render(panels: Sequence[Panel], path: str | Path, size: tuple[int, int] = (1200, 500)) -> Path:
    """Draw the panels side by side with one legend underneath and save a PNG at ``path``."""
    width, height = size
    image = Image.new("RGB", size, WHITE)
    draw = ImageDraw.Draw(image)
    names = list(dict.fromkeys(name for panel in panels for name in panel.series))
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    panel_width = width // max(1, len(panels))
    for i, panel in enumerate(panels):
        _draw_panel(draw, (i * panel_width, 0, (i + 1) * panel_width, height - LEGEND_HEIGHT), panel, colours)
    font = _font(13)
    x, y = MARGIN["left"], height - LEGEND_HEIGHT / 2
    for name in names:
        draw.line((x, y, x + 24, y), fill=colours[name], width=3)
        draw.text((x + 30, y), name, fill=BLACK, font=font, anchor="lm")
        x += 30 + int(draw.textlength(name, font=font)) + 25
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
