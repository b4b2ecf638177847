"""LRA task data: one LightningDataModule per task over a shared token cache (see lra.data.base)."""

from __future__ import annotations

from lra.data.base import LRADataModule
from lra.data.listops import ListOpsDataModule
from lra.data.listops_generator import ListOpsSpec

__all__ = ["LRADataModule", "ListOpsDataModule", "ListOpsSpec"]
