"""Fixtures of the data tests."""

from __future__ import annotations

import pytest
from helpers.progress import Terminal, show_every_update, use_stderr


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Terminal:
    """stderr replaced by a Terminal; bars shown at once and redrawn on every update."""
    stream = Terminal()
    use_stderr(monkeypatch, stream)
    show_every_update(monkeypatch)
    return stream
