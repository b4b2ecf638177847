"""What the progress tests read: a stderr that says it is a terminal, and the counts tqdm drew into it."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

import pytest

from lra.data import progress


class Terminal(io.StringIO):
    """A stderr that says it is a terminal: tqdm draws its bar into it."""

    def isatty(self) -> bool:
        return True


def use_stderr(monkeypatch: pytest.MonkeyPatch, stream: io.StringIO) -> None:
    """Make lra.data.progress see `stream` as sys.stderr (pytest's capture resets sys.stderr itself for each test)."""
    monkeypatch.setattr(progress, "sys", SimpleNamespace(stderr=stream))


def show_every_update(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bars drawn at once and on every update; a log line at every tenth however soon; LRA_PROGRESS unset."""
    monkeypatch.setattr(progress, "BAR_DELAY_S", 0.0)
    monkeypatch.setattr(progress, "BAR_INTERVAL_S", 0.0)
    monkeypatch.setattr(progress, "LOG_MIN_GAP_S", 0.0)
    monkeypatch.delenv(progress.MODE_ENV, raising=False)


def bar_counts(text: str, total: int | None, unit: str = "examples") -> list[int]:
    """The counts of every bar state tqdm drew into `text` with `total` (None: bars without a total, in `unit`)."""
    if total is None:
        return [int(count) for count in re.findall(rf"(\d+) {unit} \[", text)]
    return [int(count) for count in re.findall(rf"(\d+)/{total} \[", text)]


def progress_lines(messages: list[str], what: str) -> list[str]:
    """The periodic progress lines of the step `what` among log `messages`."""
    return [message for message in messages if message.startswith(f"{what}: ")]
