"""LRA task data: one LightningDataModule per task over a shared token cache (see lra.data.base)."""

from __future__ import annotations

from lra.data.base import LRADataModule
from lra.data.generate.listops import ListOpsSpec
from lra.data.image import ImageDataModule
from lra.data.listops import ListOpsDataModule
from lra.data.pathfinder import PathfinderDataModule
from lra.data.retrieval import RetrievalDataModule
from lra.data.text import TextDataModule

__all__ = [
    "ImageDataModule",
    "LRADataModule",
    "ListOpsDataModule",
    "ListOpsSpec",
    "PathfinderDataModule",
    "RetrievalDataModule",
    "TextDataModule",
]
