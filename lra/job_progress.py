"""Progress of N jobs at once: one line per running job and an overall count, never N interleaved bars.

On a terminal the lines are live tqdm bars (the overall count first, then one bar per slot); elsewhere (a log
file, a pipe, or LRA_PROGRESS=off) each start and end of a job is one printed line.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from tqdm import tqdm


def live_default() -> bool:
    return sys.stderr.isatty() and os.environ.get("LRA_PROGRESS", "on").lower() not in ("off", "0", "false", "no")


class Board:
    """`slots` job lines under an overall `done`/`total` count; `say` prints a line above them."""

    def __init__(
        self,
        prog: str,
        total: int,
        done: int,
        slots: int,
        unit: str,
        live: bool | None = None,
        out: TextIO | None = None,
    ) -> None:
        self.prog, self.total, self.done, self.out = prog, total, done, out
        self.live = live_default() if live is None else live
        self.overall: tqdm | None = None
        self.bars: list[tqdm] = []
        if self.live:
            self.overall = tqdm(total=total, initial=done, position=0, desc=f"{prog}: {unit}", dynamic_ncols=True)
            self.bars = [
                tqdm(total=None, position=index + 1, desc=f"  slot {index}: idle", leave=False, dynamic_ncols=True)
                for index in range(slots)
            ]

    def say(self, line: str) -> None:
        """`PROG: [done/total] line`, above the live lines when there are any."""
        text = f"{self.prog}: [{self.done}/{self.total}] {line}"
        out = sys.stdout if self.out is None else self.out  # looked up now: it may be redirected meanwhile
        if self.live:
            tqdm.write(text, file=out)
        else:
            print(text, file=out, flush=True)

    def start(self, slot: int, label: str, line: str, steps: int | None = None) -> None:
        self.say(line)
        if slot < len(self.bars):
            self.bars[slot].reset(total=steps)
            self.bars[slot].set_description(f"  {label}")

    def update(self, slot: int, step: int, note: str = "") -> None:
        """The job's training step (and a short note such as its best validation accuracy so far)."""
        if slot < len(self.bars):
            bar = self.bars[slot]
            bar.n = step
            bar.set_postfix_str(note, refresh=False)
            bar.refresh()

    def count(self, done: int) -> None:
        """`done` of the total have ended (counted by the caller: other workers may end some too)."""
        if self.overall is not None:
            self.overall.update(done - self.done)
        self.done = done

    def end(self, slot: int, line: str) -> None:
        """A job ended (or stopped): `line` is printed and its slot's line is free again."""
        self.say(line)
        if slot < len(self.bars):
            self.bars[slot].reset(total=None)
            self.bars[slot].set_description(f"  slot {slot}: idle")

    def close(self) -> None:
        for bar in self.bars:
            bar.close()
        if self.overall is not None:
            self.overall.close()
