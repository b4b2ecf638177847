"""Progress of N jobs: plain lines with the overall count off a terminal; one live line per slot on one."""

from __future__ import annotations

import io

import pytest

from lra.job_progress import Board, live_default


def test_plain_lines_carry_the_overall_count() -> None:
    out = io.StringIO()
    board = Board("lra suite", total=3, done=1, slots=2, unit="cells", live=False, out=out)
    board.start(0, "a", "a: training")
    board.update(0, 5, "val 50%")  # nothing to draw off a terminal
    board.count(2)
    board.end(0, "a: done")
    board.close()
    assert out.getvalue().splitlines() == ["lra suite: [1/3] a: training", "lra suite: [2/3] a: done"]


def test_live_bars_are_one_per_slot_under_the_overall_count(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    board = Board("lra suite", total=4, done=0, slots=2, unit="cells", live=True, out=out)
    board.start(1, "listops/nala/seed1", "started", steps=100)
    board.update(1, 40, "val 30.0%")
    board.count(1)
    board.close()
    drawn = capsys.readouterr().err
    assert "lra suite: cells" in drawn and "1/4" in drawn  # the overall bar
    assert "listops/nala/seed1" in drawn and "40/100" in drawn and "val 30.0%" in drawn  # the slot's line
    assert "slot 0: idle" in drawn
    assert out.getvalue() == "lra suite: [0/4] started\n"


def test_lra_progress_off_turns_live_lines_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    monkeypatch.setenv("LRA_PROGRESS", "off")
    assert live_default() is False
    monkeypatch.setenv("LRA_PROGRESS", "on")
    assert live_default() is True
