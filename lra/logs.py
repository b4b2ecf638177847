"""The harness's own log messages (data generation, cache hits) on the console: set up once by the entry point."""

from __future__ import annotations

import logging


def show_harness_logs() -> None:
    """Print the INFO messages of the `lra` loggers on stderr as `name: message` (a second call changes nothing)."""
    logger = logging.getLogger("lra")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
