"""What a user sees of a long data step: a tqdm bar on a terminal, periodic log lines elsewhere, or nothing.

`LRA_PROGRESS` picks it (README, "Progress"): `auto` (the default: a bar when stderr is a terminal, log lines
through the `lra.data` logger otherwise), `bar`, `log` or `off`. Generators also say, before they start, how
long they expect to take: at the rate last measured on this machine (remembered in the cache root) or, before
any measurement, at a built-in rate from the README's measurements.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from tqdm import tqdm

log = logging.getLogger("lra.data")

MODE_ENV = "LRA_PROGRESS"
MODES = ("auto", "bar", "log", "off")
# A bar appears only once its step has run this long (quick steps stay quiet) and redraws at most this often.
BAR_DELAY_S = 1.0
BAR_INTERVAL_S = 0.2
# Off a terminal: a line each time another 1/LOG_STEPS of the total is done, or LOG_EVERY_S after the last line
# (the only rule when the total is unknown), but never within LOG_MIN_GAP_S of the start or of the last line.
LOG_STEPS = 10
LOG_EVERY_S = 30.0
LOG_MIN_GAP_S = 5.0
# Measured generation rates, per task and size, in the cache root; runs shorter than MIN_MEASURED_S are
# dominated by start-up and are not remembered.
RATES_FILE = "generation-rates.json"
MIN_MEASURED_S = 10.0

T = TypeVar("T")
_NOTHING: Any = object()


def progress_mode() -> str:
    """`bar`, `log` or `off`, as $LRA_PROGRESS says; `auto` or unset: a bar if stderr is a terminal, else `log`."""
    value = os.environ.get(MODE_ENV, "").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"{MODE_ENV}={value!r}: expected one of {', '.join(MODES)}")
    if value == "auto":
        isatty = getattr(sys.stderr, "isatty", None)
        return "bar" if isatty is not None and isatty() else "log"
    return value


def duration(seconds: float) -> str:
    """A rough human duration: `40 s`, `8 min`, `2.6 h`."""
    if seconds < 59.5:
        return f"{seconds:.0f} s"
    if seconds < 3570:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """Progress of one step towards `total` `unit` (None: not known), shown as $LRA_PROGRESS says.

    A context manager; `update(n)` adds n done, `advance_to(n)` sets the count (for counts read from elsewhere,
    such as worker processes). A total turns out too small is dropped rather than shown above 100%.
    """

    def __init__(self, what: str, total: int | None = None, unit: str = "items") -> None:
        self.what = what
        self.total = total
        self.unit = unit
        self.done = 0
        self.mode = progress_mode()
        self._start = self._last_line = time.monotonic()
        self._last_step = 0
        self._bar = None
        if self.mode == "bar":
            self._bar = tqdm(
                total=total,
                desc=what,
                unit=f" {unit}",
                file=sys.stderr,
                delay=BAR_DELAY_S,
                mininterval=BAR_INTERVAL_S,
                dynamic_ncols=True,
            )

    def update(self, count: int = 1) -> None:
        """`count` more done."""
        self.advance_to(self.done + count)

    def advance_to(self, done: int) -> None:
        """`done` done in all."""
        if done == self.done:
            return
        grown, self.done = done - self.done, done
        if self.total is not None and done > self.total:
            self.total = None
            if self._bar is not None:
                self._bar.total = None
        if self._bar is not None:
            self._bar.update(grown)
        elif self.mode == "log":
            self._maybe_log()

    def _maybe_log(self) -> None:
        now = time.monotonic()
        step = self.done * LOG_STEPS // self.total if self.total else 0
        gap = now - self._last_line
        if gap >= LOG_MIN_GAP_S and (gap >= LOG_EVERY_S or step > self._last_step):
            log.info("%s", self.line(now - self._start))
            self._last_line, self._last_step = now, step

    def line(self, elapsed: float) -> str:
        """`what: done/total (p%), rate unit/s, about T left` after `elapsed` seconds (the parts that are known)."""
        rate = self.done / elapsed if elapsed > 0 else 0.0
        text = f"{self.what}: {self.done:,}"
        if self.total:
            text += f"/{self.total:,} ({self.done / self.total:.0%})"
        text += f", {_rate(rate)} {self.unit}/s"
        if self.total and rate > 0 and self.done < self.total:
            text += f", about {duration((self.total - self.done) / rate)} left"
        return text

    def close(self) -> None:
        """Finish the bar (left on screen with its final count)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def track(items: Iterable[T], what: str, total: int | None = None, unit: str = "items") -> Iterator[T]:
    """Yield `items`, counted by a Progress that opens at the first item (work before it, such as generating the
    files the items are read from, shows its own progress first). `items` is closed at the end or when the
    consumer stops early, so worker pools behind it shut down at once (on Ctrl-C too)."""
    iterator = iter(items)
    try:
        first = next(iterator, _NOTHING)
        if first is not _NOTHING:
            with Progress(what, total, unit) as progress:
                progress.update()
                yield first
                for item in iterator:
                    progress.update()
                    yield item
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def ignore_interrupts() -> None:
    """Worker-process initializer: Ctrl-C is for the parent alone, which stops the workers and removes what they
    wrote (otherwise each worker also prints a KeyboardInterrupt traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def remembered_rate(root: Path, key: str) -> float | None:
    """The rate (units per second per worker) last measured for `key` under `root`, None if there is none."""
    try:
        entry = json.loads((root / RATES_FILE).read_text())[key]
        rate = float(entry["per_worker_per_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return rate if math.isfinite(rate) and rate > 0 else None


def remember_rate(root: Path, key: str, entry: dict[str, Any]) -> None:
    """Record `entry` (with `per_worker_per_s`) for `key` in `root`'s rates file, written atomically; a cache root
    that cannot be written only loses the estimate."""
    path = root / RATES_FILE
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        try:
            rates = json.loads(path.read_text())
        except (OSError, ValueError):
            rates = {}
        if not isinstance(rates, dict):
            rates = {}
        rates[key] = entry
        root.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(rates, indent=2, sort_keys=True) + "\n")
        os.replace(temporary, path)
    except OSError as error:
        log.debug("could not record the generation rate in %s: %s", path, error)
    finally:
        temporary.unlink(missing_ok=True)


def estimate(count: int, unit: str, workers: int, measured: float | None, builtin: float | None) -> str:
    """`about T at the last measured rate (R unit/s per worker)`, or at the built-in rate, or that none is known."""
    if measured is not None:
        rate, source = measured, "the last measured rate"
    elif builtin is not None:
        rate, source = builtin, "the built-in rate; none measured on this machine yet"
    else:
        return "no rate measured yet to estimate the time from"
    return f"about {duration(count / (rate * workers))} at {_rate(rate)} {unit}/s per worker ({source})"


def _rate(rate: float) -> str:
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.1f}"


@contextlib.contextmanager
def generating(
    name: str,
    count: int,
    unit: str,
    workers: int,
    key: str,
    builtin_rate: float | None,
    rates_root: Path,
    label: str | None = None,
) -> Iterator[Progress]:
    """Log what is about to be generated (`count` `name`) with a time estimate, yield its Progress (`label`: the
    bar's, default `name`), and remember the rate measured (per worker, under `key` in `rates_root`) when the run
    succeeds and was long enough to measure."""
    workers_text = f"{workers} worker{'s' if workers > 1 else ''}"
    measured = remembered_rate(rates_root, key)
    expected = estimate(count, unit, workers, measured, builtin_rate)
    log.info("generating %s %s on %s, %s", f"{count:,}", name, workers_text, expected)
    start = time.monotonic()
    with Progress(f"generating {label or name}", count, unit) as progress:
        yield progress
    elapsed = time.monotonic() - start
    if elapsed >= MIN_MEASURED_S:
        entry = {"per_worker_per_s": count / elapsed / workers, "count": count, "workers": workers, "seconds": elapsed}
        remember_rate(rates_root, key, entry)
