"""The Pathfinder generator against pathfinder.md: its statistics, the release's layout, determinism, errors.

The statistics are those measured on the original generator at 32 px, hard (pathfinder.md, last section).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lra.bench.pathfinder import main as bench_main
from lra.data.generate.pathfinder import (
    DIFFICULTIES,
    RESOLUTIONS,
    PathfinderParams,
    _Draws,
    _geometry,
    _Painter,
    generate_image,
    generate_pathfinder,
    params_for,
    render_pathfinder,
)
from lra.data.generate.pathfinder_stamps import ANTIALIAS, FULL, dilate, marker

HARD = 14
SAMPLES = 400


@pytest.fixture(scope="module")
def samples() -> list:
    """SAMPLES images at 32 px, hard, labels alternating."""
    rng = np.random.default_rng(2024)
    params = params_for(32)
    return [render_pathfinder(rng, params, HARD, index % 2) for index in range(SAMPLES)]


@pytest.fixture(scope="module")
def level(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated level: 250 images at 32 px, hard, in shards of 100."""
    out = tmp_path_factory.mktemp("pathfinder")
    return generate_pathfinder(out, 32, HARD, 250, seed=3, workers=1, shard_size=100)


def test_parameters_are_the_release_table() -> None:
    assert RESOLUTIONS == (32, 64, 128, 256)
    assert DIFFICULTIES == {6: "curv_baseline", 9: "curv_contour_length_9", 14: "curv_contour_length_14"}
    assert params_for(32) == PathfinderParams(32, 1, 2, 0.5, (1,), 7, 1.5, 1.0, 2.0, 0.75, 20)
    assert params_for(128).margins == (2, 3)
    assert params_for(256).padding == 22
    # Distractors per image at 32 px: K // (contour_length // 3).
    assert [params_for(32).distractor_budget // (length // 3) for length in (6, 9, 14)] == [10, 6, 5]


def test_every_image_spans_0_to_255(samples: list) -> None:
    for sample in samples:
        assert sample.image.dtype == np.uint8 and sample.image.shape == (32, 32)
        assert sample.image.min() == 0 and sample.image.max() == 255


def test_about_a_third_of_the_pixels_are_lit(samples: list) -> None:
    lit = np.mean([np.mean(sample.image > 0) for sample in samples])
    assert 0.25 <= lit <= 0.42, lit


def test_markers_sit_on_the_target_tips(samples: list) -> None:
    """One marker on a target contour's start; the first target starts in the centre, the second seed_distance
    away. (pathfinder.md's "one marker always near the centre" cannot hold with its own step 4, o in {A, B}: the
    original code measured gives about half, and so do we.)"""
    near_centre = []
    for sample in samples:
        first, second = np.array(sample.starts)
        assert np.all((first >= 14) & (first <= 16)), sample.starts
        assert abs(np.hypot(*(second - first)) - params_for(32).seed_distance) <= 1
        origin = sample.markers[0]
        assert origin in sample.starts
        near_centre.append(any(all(14 <= value <= 16 for value in point) for point in sample.markers))
    assert 0.35 <= np.mean(near_centre) <= 0.65


def test_marker_distances_match_the_release(samples: list) -> None:
    distance = {0: [], 1: []}
    for sample in samples:
        (y0, x0), (y1, x1) = sample.markers
        distance[sample.label].append(math.hypot(y1 - y0, x1 - x0))
    negative, positive = np.mean(distance[0]), np.mean(distance[1])
    assert abs(negative - 12.6) <= 2.5, negative
    assert abs(positive - 14.4) <= 2.5, positive
    assert positive > negative
    assert 3.0 <= np.std(distance[0]) <= 7.0 and 3.0 <= np.std(distance[1]) <= 7.5


def test_a_distractor_is_usually_the_brightest(samples: list) -> None:
    brightest = [sample.peaks["distractor"] > max(sample.peaks["target"], sample.peaks["marker"]) for sample in samples]
    assert np.mean(brightest) > 0.5
    # Contrasts before the stretch: targets 0.75 * 2 = 1.5, distractors 2, markers 1 (times the stroke's peak).
    assert all(sample.peaks["marker"] == 1.0 for sample in samples)


def test_few_distractors_fit(samples: list) -> None:
    counts = np.array([sample.num_distractors for sample in samples])
    assert counts.max() <= 5
    assert np.mean(counts <= 2) > 0.7


def test_incremental_occupancy_matches_a_plain_recomputation() -> None:
    """After a target pair, M is the max of the placed margins (all but the first snake's last paddle) and the
    padding border, and the crowding plane is M dilated by a disk of radius m (outside the image: full)."""
    params = params_for(32)
    geometry = _geometry(params, 1)
    painter = _Painter(geometry, _Draws(np.random.default_rng(5)))
    pair = None
    while pair is None:
        painter.clear()
        pair = painter.target_pair(HARD)
    pad, size, half = geometry.pad, geometry.size, geometry.half
    plain = np.zeros((size + 2 * pad, size + 2 * pad), dtype=np.uint8)
    for tail, paddle in pair[0].paddles[:-1] + pair[1].paddles:
        rows = slice(tail[0] + pad - half, tail[0] + pad + half + 1)
        cols = slice(tail[1] + pad - half, tail[1] + pad + half + 1)
        plain[rows, cols] = np.maximum(plain[rows, cols], paddle.mask)
    image = (slice(pad, pad + size), slice(pad, pad + size))
    border = np.full((size, size), FULL, dtype=np.uint8)
    border[1:-1, 1:-1] = 0
    occupancy = np.maximum(plain[image], border)
    assert np.array_equal(painter.planes[0][image], occupancy)
    everywhere = np.full_like(plain, FULL)
    everywhere[image] = occupancy
    assert np.array_equal(painter.planes[1][image], dilate(everywhere, 1)[image])


@pytest.mark.parametrize(
    ("size", "centre", "radius"),
    [(32, (15, 15), 1.5), (32, (0, 0), 1.5), (32, (31, 2), 1.5), (32, (5, 30), 1.5), (128, (64, 3), 3.0)],
)
def test_marker_window_equals_the_whole_image_draw(size: int, centre: tuple[int, int], radius: float) -> None:
    """The original draws a marker on the whole 2x image and shrinks it; our window gives the same pixels."""
    dy, dx = np.ogrid[: size * ANTIALIAS, : size * ANTIALIAS]
    inside = (dy - centre[0] * ANTIALIAS) ** 2 + (dx - centre[1] * ANTIALIAS) ** 2 <= (radius * ANTIALIAS) ** 2
    whole = np.asarray(Image.fromarray(np.where(inside, FULL, 0).astype(np.uint8)).resize((size, size), Image.LANCZOS))
    window, levels = marker(size, centre, radius)
    drawn = np.zeros((size, size), dtype=np.uint8)
    drawn[window] = levels
    assert np.array_equal(drawn, whole)


def test_release_layout_and_metadata(level: Path) -> None:
    assert level.parts[-2:] == ("pathfinder32", "curv_contour_length_14")
    assert sorted(path.name for path in (level / "metadata").iterdir()) == ["0.npy", "1.npy", "2.npy"]
    labels = []
    for shard, count in ((0, 100), (1, 100), (2, 50)):
        lines = (level / "metadata" / f"{shard}.npy").read_text(encoding="ascii").splitlines()
        assert len(lines) == count
        for index, line in enumerate(lines):
            fields = line.split(" ")
            assert len(fields) == 11
            assert fields[:3] == [f"imgs/{shard}", f"sample_{index}.png", str(index)]
            assert fields[3] in ("0", "1")
            assert fields[4:] == ["1.0", "14", "4", "2", "0.5", "1", "1"]
            labels.append(int(fields[3]))
            with Image.open(level / fields[0] / fields[1]) as png:
                pixels = np.asarray(png)
            assert png.mode == "L" and pixels.shape == (32, 32)
            assert pixels.min() == 0 and pixels.max() == 255
    assert sorted(path.name for path in (level / "imgs").iterdir()) == ["0", "1", "2"]
    assert 0.4 <= np.mean(labels) <= 0.6


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_same_arguments_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    one = generate_pathfinder(tmp_path / "one", 32, 6, 30, seed=7, workers=1, shard_size=8)
    two = generate_pathfinder(tmp_path / "two", 32, 6, 30, seed=7, workers=2, shard_size=8)
    again = generate_pathfinder(tmp_path / "again", 32, 6, 30, seed=7, workers=1, shard_size=8)
    assert len(folder_bytes(one)) == 30 + 4
    assert folder_bytes(one) == folder_bytes(two) == folder_bytes(again)


def test_different_seeds_give_different_images(tmp_path: Path) -> None:
    first = generate_pathfinder(tmp_path / "a", 32, 9, 5, seed=1, workers=1)
    second = generate_pathfinder(tmp_path / "b", 32, 9, 5, seed=2, workers=1)
    assert folder_bytes(first) != folder_bytes(second)
    rng = np.random.default_rng
    assert np.array_equal(generate_image(rng(4), params_for(32), 9, 1), generate_image(rng(4), params_for(32), 9, 1))
    assert not np.array_equal(
        generate_image(rng(4), params_for(32), 9, 1), generate_image(rng(5), params_for(32), 9, 1)
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"resolution": 48}, "resolution must be one of"),
        ({"difficulty": 7}, "difficulty"),
        ({"num_images": 0}, "num_images"),
        ({"num_images": 2.5}, "num_images"),
        ({"seed": -1}, "seed"),
        ({"workers": 0}, "workers"),
        ({"shard_size": 0}, "shard_size"),
    ],
)
def test_bad_arguments_raise_clear_errors(tmp_path: Path, arguments: dict, message: str) -> None:
    settings = {"resolution": 32, "difficulty": 14, "num_images": 3} | arguments
    with pytest.raises(ValueError, match=message):
        generate_pathfinder(tmp_path, **settings)
    assert not (tmp_path / "pathfinder32").exists()


def test_bad_image_arguments_raise_clear_errors() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="contour_length"):
        generate_image(rng, params_for(32), 2, 0)
    with pytest.raises(ValueError, match="label"):
        generate_image(rng, params_for(32), 14, 2)
    with pytest.raises(ValueError, match="resolution"):
        params_for(100)


@pytest.mark.parametrize("resolution", [64, 128, 256])
def test_larger_resolutions(resolution: int) -> None:
    sample = render_pathfinder(np.random.default_rng(1), params_for(resolution), HARD, 1)
    assert sample.image.shape == (resolution, resolution) and sample.image.dtype == np.uint8
    assert sample.image.min() == 0 and sample.image.max() == 255
    assert sample.margin in params_for(resolution).margins


def test_bench_prints_rates(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main(["--n", "20", "--workers", "1", "--difficulty", "6"]) == 0
    out = capsys.readouterr().out
    assert "images/s" in out and "projected 200,000 images" in out and "0.27 s/image" in out
