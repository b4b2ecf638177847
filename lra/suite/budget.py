"""Time budgets of a suite: per cell (Lightning's `trainer.max_time`) and for the whole grid (a deadline)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lra.overrides import ConfigError

UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
UNIT_TERM = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
LIGHTNING = re.compile(r"(\d+):(\d{1,2}):(\d{1,2}):(\d{1,2})")  # DD:HH:MM:SS, Lightning's max_time string
EXAMPLES = "e.g. 90s, 45m, 2h, 1d12h or DD:HH:MM:SS"


def parse_duration(value: Any, where: str) -> int:
    """Whole seconds (at least 1) from `2h`, `1h30m`, `90s`, `1.5d` or `00:02:00:00`; a ConfigError naming `where`."""
    text = value.strip() if isinstance(value, str) else None
    seconds: float | None = None
    if text and (match := LIGHTNING.fullmatch(text)):
        days, hours, minutes, secs = map(int, match.groups())
        seconds = days * 86400 + hours * 3600 + minutes * 60 + secs
    elif text and "".join(term.group(0) for term in UNIT_TERM.finditer(text)) == text:
        seconds = sum(float(number) * UNITS[unit] for number, unit in UNIT_TERM.findall(text))
    if seconds is None or seconds < 1:
        raise ConfigError(f"{where}: {value!r} is not a duration of at least 1 s; expected {EXAMPLES}")
    return round(seconds)


def max_time(seconds: int) -> str:
    """Lightning's `trainer.max_time` string DD:HH:MM:SS for whole seconds."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days:02d}:{hours:02d}:{minutes:02d}:{secs:02d}"


def shown(seconds: float | None) -> str:
    """A duration as people write it: 1h30m, 45s; None is `none`."""
    if seconds is None:
        return "none"
    rest, parts = round(seconds), []
    for unit, size in UNITS.items():
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


@dataclass(frozen=True)
class Budget:
    """Seconds of training per cell (counted across re-runs, as Lightning's Timer keeps them in last.ckpt) and of
    wall-clock time for this invocation of the grid; None: no limit."""

    cell: int | None = None
    grid: int | None = None


def parse_budget(value: Any, where: str) -> Budget:
    """A suite file's `budget: {cell: 2h, grid: 12h}` (either may be left out)."""
    if value is None:
        return Budget()
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping such as {{cell: 2h, grid: 12h}}, got {value!r}")
    unknown = sorted(map(str, set(value) - {"cell", "grid"}))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; expected cell, grid")
    cell, grid = (value.get(key) for key in ("cell", "grid"))
    return Budget(
        None if cell is None else parse_duration(cell, f"{where}.cell"),
        None if grid is None else parse_duration(grid, f"{where}.grid"),
    )
