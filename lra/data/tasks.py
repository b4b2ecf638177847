"""The six LRA tasks by name, each with its DataModule class and the settings its task config uses.

Words used across the harness: a *task* is one of the six benchmarks of the Long Range Arena (Tay et al. 2021,
arXiv 2011.04006), named as in TASKS; a *task config* is a LightningCLI config that trains one, tasks/<task>.yaml
or any copy of it (suites and sweeps name task configs by task name or path); AVERAGED_TASKS are the five tasks the
LRA average is taken over; TASK_TITLES are the tasks' headings in result tables.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from lra.data.base import LRADataModule
from lra.data.image import ImageDataModule
from lra.data.listops import ListOpsDataModule
from lra.data.pathfinder import PathfinderDataModule
from lra.data.retrieval import RetrievalDataModule
from lra.data.text import TextDataModule


class Task(NamedTuple):
    """A task's DataModule class and the init arguments that differ from the class defaults."""

    datamodule: type[LRADataModule]
    settings: dict[str, Any]


TASKS: dict[str, Task] = {
    # eval_batches: protocol 2's number of evaluation batches per validation (the tasks/*.yaml value)
    "listops": Task(ListOpsDataModule, {"eval_batches": 62}),
    "text": Task(TextDataModule, {"eval_batches": 200}),
    "retrieval": Task(RetrievalDataModule, {"eval_batches": 300}),
    "image": Task(ImageDataModule, {"eval_batches": 20}),
    "pathfinder": Task(PathfinderDataModule, {"resolution": 32, "difficulty": 14, "eval_batches": 156}),
    "pathx": Task(PathfinderDataModule, {"resolution": 128, "difficulty": 14, "batch_size": 32, "eval_batches": 624}),
}
# The tasks of the LRA average, in the order of the published tables; Path-X is reported beside them.
AVERAGED_TASKS = ("listops", "text", "retrieval", "image", "pathfinder")
TASK_TITLES = {
    "listops": "ListOps",
    "text": "Text",
    "retrieval": "Retrieval",
    "image": "Image",
    "pathfinder": "Pathfinder",
    "pathx": "Path-X",
}


def build_datamodule(task: str, **overrides: Any) -> LRADataModule:
    """The DataModule of `task` (a name in TASKS) with its settings, updated by `overrides` (e.g. root=...)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    datamodule, settings = TASKS[task]
    return datamodule(**{**settings, **overrides})
