"""Progress of long data steps: the LRA_PROGRESS switch, bars on a terminal, log lines elsewhere, the rates file,
and the token cache's per-split progress (lra.data.progress, lra.data.cache)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers.progress import Terminal, bar_counts, progress_lines, show_every_update, use_stderr

from lra.data import progress
from lra.data.cache import RaggedSplit, write_cache
from lra.data.progress import Progress, estimate, progress_mode, remember_rate, remembered_rate, track


@pytest.fixture
def log_file(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> io.StringIO:
    """stderr replaced by a plain file (not a terminal); a progress line allowed at every tenth, however soon."""
    stream = io.StringIO()
    use_stderr(monkeypatch, stream)
    show_every_update(monkeypatch)
    caplog.set_level(logging.INFO, logger="lra.data")
    return stream


def lines_of(caplog: pytest.LogCaptureFixture, what: str) -> list[str]:
    return progress_lines([record.getMessage() for record in caplog.records], what)


@pytest.mark.parametrize(
    ("value", "is_terminal", "mode"),
    [
        (None, True, "bar"),
        (None, False, "log"),
        ("auto", True, "bar"),
        ("", False, "log"),
        ("bar", False, "bar"),
        ("log", True, "log"),
        ("off", True, "off"),
        (" OFF ", False, "off"),
    ],
)
def test_mode_follows_the_switch_then_whether_stderr_is_a_terminal(
    monkeypatch: pytest.MonkeyPatch, value: str | None, is_terminal: bool, mode: str
) -> None:
    use_stderr(monkeypatch, Terminal() if is_terminal else io.StringIO())
    if value is None:
        monkeypatch.delenv(progress.MODE_ENV, raising=False)
    else:
        monkeypatch.setenv(progress.MODE_ENV, value)
    assert progress_mode() == mode


def test_an_unknown_switch_value_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(progress.MODE_ENV, "quiet")
    with pytest.raises(ValueError, match=r"LRA_PROGRESS='quiet': expected one of auto, bar, log, off"):
        Progress("x", 10)


def test_a_terminal_gets_a_bar_ending_at_the_total(terminal: Terminal, caplog: pytest.LogCaptureFixture) -> None:
    with Progress("counting", 50, "examples") as bar:
        for _ in range(50):
            bar.update()
    counts = bar_counts(terminal.getvalue(), 50)
    assert counts == sorted(counts) and len(set(counts)) > 10 and counts[-1] == 50
    assert "counting: 100%" in terminal.getvalue() and "examples/s" in terminal.getvalue()
    assert not lines_of(caplog, "counting")


def test_off_a_terminal_a_line_at_each_tenth_and_no_bar(
    log_file: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    with Progress("counting", 40, "examples") as bar:
        for _ in range(40):
            bar.update()
    lines = lines_of(caplog, "counting")
    assert [line.split(",")[0] for line in lines] == [
        f"counting: {done}/40 ({done * 100 // 40}%)" for done in range(4, 41, 4)
    ]
    assert "examples/s, about" in lines[0] and "left" in lines[0] and "left" not in lines[-1]
    assert log_file.getvalue() == ""


def test_log_lines_wait_for_the_minimum_gap_and_come_every_interval(
    monkeypatch: pytest.MonkeyPatch, log_file: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    clock = iter(range(0, 1000, 2))  # every reading of the clock is 2 s after the last
    monkeypatch.setattr(progress, "time", SimpleNamespace(monotonic=lambda: float(next(clock))))
    monkeypatch.setattr(progress, "LOG_MIN_GAP_S", 5.0)
    monkeypatch.setattr(progress, "LOG_EVERY_S", 9.0)
    with Progress("unknown total", None, "examples") as bar:  # made at t = 0
        for _ in range(12):  # updates at t = 2, 4, ..., 24
            bar.update()
    lines = lines_of(caplog, "unknown total")
    # No tenths without a total: a line at the first update 9 s or more after the last one (t = 10 and 20).
    assert [line.split(",")[0] for line in lines] == ["unknown total: 5", "unknown total: 10"]


def test_the_switch_silences_bars_and_lines(
    monkeypatch: pytest.MonkeyPatch, terminal: Terminal, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lra.data")
    monkeypatch.setenv(progress.MODE_ENV, "off")
    with Progress("counting", 20) as bar:
        for _ in range(20):
            bar.update()
    use_stderr(monkeypatch, io.StringIO())  # not a terminal: log lines, were they not switched off
    with Progress("counting", 20) as bar:
        for _ in range(20):
            bar.update()
    assert terminal.getvalue() == "" and not lines_of(caplog, "counting")


def test_a_total_exceeded_is_dropped_rather_than_shown_above_100_percent(terminal: Terminal) -> None:
    with Progress("counting", 5, "examples") as bar:
        bar.advance_to(3)
        bar.advance_to(8)
    assert bar.total is None
    assert bar_counts(terminal.getvalue(), 5) == [0, 3] and bar_counts(terminal.getvalue(), None)[-1] == 8


def test_track_opens_at_the_first_item_and_closes_what_it_reads(terminal: Terminal) -> None:
    closed = []

    def items() -> Iterator[int]:
        try:
            terminal.write("<before the first item>")
            yield from range(10)
        finally:
            closed.append(True)

    seen = []
    for item in track(items(), "reading", 10, "examples"):
        seen.append(item)
        if item == 6:
            break
    text = terminal.getvalue()
    assert seen == list(range(7)) and closed == [True]
    assert text.index("<before the first item>") < text.index("reading:")  # the bar opened after it
    assert bar_counts(text, 10)[-1] == 7


def test_track_of_nothing_shows_nothing(terminal: Terminal) -> None:
    assert list(track(iter([]), "reading", 10)) == [] and terminal.getvalue() == ""


def test_the_cache_shows_each_split_against_its_expected_size(tmp_path: Path, terminal: Terminal) -> None:
    splits = {"train": [([1, 2], 0)] * 30, "val": [([3], 1)] * 4, "test": [([4, 5, 6], 1)] * 6}
    folder = tmp_path / "demo-0123456789ab"
    write_cache(folder, {}, 8, splits, expected={"train": 30, "val": 4, "test": 7})
    text = terminal.getvalue()
    for split, count, expected in (("train", 30, 30), ("val", 4, 4), ("test", 6, 7)):
        assert f"caching demo {split}:" in text
        assert bar_counts(text, expected)[-1] == count  # test ends short of what was expected, as it should
    assert len(RaggedSplit.open(folder, "train")) == 30


def test_rates_are_remembered_atomically_and_bad_files_ignored(tmp_path: Path) -> None:
    assert remembered_rate(tmp_path, "a") is None
    remember_rate(tmp_path, "a", {"per_worker_per_s": 12.5, "count": 100})
    remember_rate(tmp_path, "b", {"per_worker_per_s": 3.0})
    assert remembered_rate(tmp_path, "a") == 12.5 and remembered_rate(tmp_path, "b") == 3.0
    assert [path.name for path in tmp_path.iterdir()] == [progress.RATES_FILE]  # no temporary file left
    rates = tmp_path / progress.RATES_FILE
    rates.write_text(json.dumps({"a": {"per_worker_per_s": "fast"}, "b": {"per_worker_per_s": -1.0}, "c": [1]}))
    assert [remembered_rate(tmp_path, key) for key in "abc"] == [None, None, None]
    rates.write_text('{"a": {"per_worker_per_s": 12.5}')  # cut short: not JSON
    assert remembered_rate(tmp_path, "a") is None
    remember_rate(tmp_path, "d", {"per_worker_per_s": 7.0})  # an unreadable file is replaced, not an error
    assert json.loads(rates.read_text()) == {"d": {"per_worker_per_s": 7.0}}


def test_estimates_say_where_the_rate_comes_from() -> None:
    assert estimate(200_000, "images", 2, 200.0, 10.0) == (
        "about 8 min at 200 images/s per worker (the last measured rate)"
    )
    assert estimate(200_000, "images", 2, None, 10.0) == (
        "about 2.8 h at 10 images/s per worker (the built-in rate; none measured on this machine yet)"
    )
    assert estimate(30, "images", 1, None, 4.0).startswith("about 8 s at 4.0 images/s per worker")
    assert estimate(30, "images", 1, None, None) == "no rate measured yet to estimate the time from"
