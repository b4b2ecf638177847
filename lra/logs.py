"""The harness's own log messages (data generation, cache hits) on the console: set up once by the entry point."""

from __future__ import annotations

import logging
import sys
from typing import TextIO


class StderrHandler(logging.StreamHandler):
    """A StreamHandler that writes to whatever `sys.stderr` is when a message comes, not the stream of its creation
    (an entry point called again in one process, as tests do, may find stderr replaced)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ assigns it; the property always reads stderr
        pass


def show_harness_logs() -> None:
    """Print the INFO messages of the `lra` loggers on stderr as `name: message` (a second call changes nothing)."""
    logger = logging.getLogger("lra")
    if not logger.handlers:
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
