"""The table in TensorBoard: OUT/suite/<encoder>, one run per encoder with its settings in the HParams view and the
scalars `lra/<task>` (mean test accuracy), `lra/<task>/std`, `lra/average` and `lra/average/std`, logged each time
one of its cells ends (step: how many of its cells have a test score). The cells' own runs hold their curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from lra.data.tasks import AVERAGED_TASKS
from lra.suite.config import SUITE_RUN, flow


def hparam_values(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Values for TensorBoard's HParams view: numbers, strings and booleans as they are, others as one line of YAML."""
    return {
        key: value if isinstance(value, (bool, int, float, str)) else flow(value) for key, value in settings.items()
    }


class TableLog:
    """One SummaryWriter per encoder, opened on its first use; its first opening records the settings."""

    def __init__(self, out: Path, tasks: Sequence[str], settings: Mapping[str, Mapping[str, Any]]) -> None:
        self.folder = out / SUITE_RUN
        self.tasks = tasks  # the task names of the grid (metric tags besides the averaged five)
        self.settings = settings  # per encoder: its HParams
        self.writers: dict[str, SummaryWriter] = {}

    def _writer(self, encoder: str) -> SummaryWriter:
        if encoder not in self.writers:
            folder = self.folder / encoder
            first = not any(folder.glob("events.out.tfevents.*"))
            writer = self.writers[encoder] = SummaryWriter(str(folder))
            if first:
                names = dict.fromkeys([*AVERAGED_TASKS, *self.tasks, "average"])
                metrics = {f"lra/{name}": 0.0 for name in names}  # declares the metric tags; values unused
                for summary in hparams(hparam_values(self.settings.get(encoder, {"encoder": encoder})), metrics):
                    writer.file_writer.add_summary(summary)
        return self.writers[encoder]

    def log(self, encoder: str, row: Mapping[str, Any]) -> None:
        """The encoder's row of the table (report.summarize's) as scalars."""
        writer = self._writer(encoder)
        step = sum(entry["n"] for entry in row["tasks"].values())
        values = {task: (entry["mean"], entry["std"]) for task, entry in row["tasks"].items() if entry["n"]}
        if row["average"]["mean"] is not None:
            values["average"] = (row["average"]["mean"], row["average"]["std"])
        for name, (mean, std) in values.items():
            writer.add_scalar(f"lra/{name}", mean, step)
            if std is not None:
                writer.add_scalar(f"lra/{name}/std", std, step)
        writer.flush()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()
