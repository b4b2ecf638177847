"""Finding a task's files under a user's folder, whatever the layout (task folder, flattened or nested release)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

RELEASE_URL = "https://storage.googleapis.com/long-range-arena/lra_release.gz"


def release_layouts(task_folder: str) -> tuple[str, ...]:
    """Where a task folder of the official release may sit under a root: the root itself, the task folder,
    the flattened `lra_release/<task_folder>` and the nested `lra_release/lra_release/<task_folder>`."""
    return (".", task_folder, f"lra_release/{task_folder}", f"lra_release/lra_release/{task_folder}")


def find_layout(
    root: str | os.PathLike[str] | None,
    task: str,
    layouts: Sequence[str],
    required: Sequence[str],
    expected: str,
    source: str,
) -> Path:
    """The first folder `root/<layout>` holding every `required` path (files or folders, relative to it).

    Raises FileNotFoundError naming the task, every path looked at, what was `expected` and the data's `source`;
    with no root at all, what to pass.
    """
    accepted = ", ".join(os.path.normpath(Path("ROOT") / layout) for layout in layouts)
    if root is None:
        raise FileNotFoundError(
            f"{task} data not found: data.root is not set ({task} is not generated: it needs your copy). "
            f"Expected {expected}, together in one of: {accepted}. {source} "
            f"(`lightning fit`: --data.root ROOT; `lra data prepare|verify`: --root ROOT)"
        )
    root = Path(root).expanduser()
    for layout in layouts:
        folder = Path(os.path.normpath(root / layout))
        if all((folder / name).exists() for name in required):
            return folder
    looked_at = "\n".join(f"  {os.path.normpath(root / layout / name)}" for layout in layouts for name in required)
    problem = f"the folder {root} does not exist" if not root.is_dir() else f"no complete set of files under {root}"
    raise FileNotFoundError(
        f"{task} data not found: {problem}. Looked at:\n{looked_at}\n"
        f"Expected {expected}, together in one of: {accepted}. {source}"
    )
