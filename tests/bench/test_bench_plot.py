"""The Pillow log-log plots of `lra bench`: ticks, and a PNG with axes, lines and legend."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from lra.bench.plot import PALETTE, WHITE, Panel, log_ticks, render, tick_label


def test_log_ticks_are_decades_over_a_wide_span() -> None:
    assert log_ticks(3.0, 40_000.0) == [10.0, 100.0, 1000.0, 10_000.0]


def test_log_ticks_add_2_and_5_over_a_short_span() -> None:
    assert log_ticks(1.5, 60.0) == [2.0, 5.0, 10.0, 20.0, 50.0]


def test_log_ticks_reject_non_positive_ranges() -> None:
    with pytest.raises(ValueError, match="0 < lo <= hi"):
        log_ticks(0.0, 10.0)


def test_tick_labels_are_short() -> None:
    assert [tick_label(v) for v in (16384.0, 1e4, 2.5, 0.01, 1e8)] == ["16384", "10000", "2.5", "0.01", "1e+08"]


def colours_in(path: Path) -> set[tuple[int, int, int]]:
    with Image.open(path) as image:
        return {colour for _, colour in image.convert("RGB").getcolors(maxcolors=1 << 20)}


def test_render_draws_every_line_in_its_colour_at_the_requested_size(tmp_path: Path) -> None:
    lengths = [1024, 2048, 4096]
    time = Panel(
        "time", "length", "ms", {"a": [(n, n / 100) for n in lengths], "b": [(n, n**2 / 1e5) for n in lengths]}
    )
    memory = Panel("memory", "length", "MB", {"a": [(1024, 3.0), (2048, None), (4096, 12.0)], "b": []})
    path = render([time, memory], tmp_path / "sub" / "plot.png", size=(900, 400))
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (900, 400)
    colours = colours_in(path)
    assert {WHITE, PALETTE[0], PALETTE[1]} <= colours  # background and both lines (and legend swatches)
    assert PALETTE[2] not in colours  # only two series


def test_a_panel_without_data_says_so_instead_of_failing(tmp_path: Path) -> None:
    path = render([Panel("empty", "x", "y", {"a": [(1, None)]})], tmp_path / "empty.png", size=(400, 300))
    with Image.open(path) as image:
        assert image.size == (400, 300)
    assert len(colours_in(path)) > 2  # frame and text drawn on white
