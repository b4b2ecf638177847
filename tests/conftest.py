"""Fixtures every test folder may use; the shared writers and runners live in tests/helpers/."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data cache of this test's own ($LRA_CACHE_DIR set to it for the test's duration)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("LRA_CACHE_DIR", str(cache))
    return cache
