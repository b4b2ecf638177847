"""The LRA tasks by name: each task's DataModule class and the settings its tasks/<name>.yaml uses."""

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
    "listops": Task(ListOpsDataModule, {}),
    "text": Task(TextDataModule, {}),
    "retrieval": Task(RetrievalDataModule, {}),
    "image": Task(ImageDataModule, {}),
    "pathfinder": Task(PathfinderDataModule, {"resolution": 32, "difficulty": 14}),
    "pathx": Task(PathfinderDataModule, {"resolution": 128, "difficulty": 14, "batch_size": 32}),
}


def build_datamodule(task: str, **overrides: Any) -> LRADataModule:
    """The DataModule of `task` (a name in TASKS) with its settings, updated by `overrides` (e.g. root=...)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    datamodule, settings = TASKS[task]
    return datamodule(**{**settings, **overrides})
