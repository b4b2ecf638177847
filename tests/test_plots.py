"""The matplotlib figures of lra.plots: `lra bench attention`'s log-log panels and the suite's bars and curves."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from lra.plots import PALETTE, WHITE, Panel, bar_chart, render


def colours_in(path: Path) -> set[tuple[int, int, int]]:
    with Image.open(path) as image:
        return {colour for _, colour in image.convert("RGB").getcolors(maxcolors=1 << 20)}


def test_palette_is_tableau_ten() -> None:
    assert PALETTE[:3] == ((31, 119, 180), (255, 127, 14), (44, 160, 44)) and len(PALETTE) == 10


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


def test_linear_panels_shade_their_bands(tmp_path: Path) -> None:
    curve = Panel(
        "val", "step", "acc", {"a": [(1, 0.2), (2, 0.4)]}, bands={"a": [(1, 0.1, 0.3), (2, 0.3, 0.5)]}, log=False
    )
    path = render([curve], tmp_path / "curve.png", size=(500, 400))
    red, green, blue = PALETTE[0]
    light = (round(0.2 * red + 0.8 * 255), round(0.2 * green + 0.8 * 255), round(0.2 * blue + 0.8 * 255))
    assert any(max(abs(a - b) for a, b in zip(colour, light, strict=True)) <= 2 for colour in colours_in(path))


def test_bar_chart_has_a_bar_per_series_and_error_bars(tmp_path: Path) -> None:
    series = {"nala": [(40.0, 1.0), (60.0, None)], "softmax": [(38.0, 2.0), (None, None)]}
    path = bar_chart(["ListOps", "avg"], series, tmp_path / "bars.png", "LRA", "test accuracy (%)", size=(600, 400))
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (600, 400)
    colours = colours_in(path)
    assert {PALETTE[0], PALETTE[1], (0, 0, 0)} <= colours and PALETTE[2] not in colours
