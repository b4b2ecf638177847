"""Checks of integer settings shared by the data modules and generators: one message for every bad value."""

from __future__ import annotations


def check_int(name: str, value: object, lowest: int) -> None:
    """Raise ValueError unless `value` is an int (not a bool) >= lowest; the message names the setting."""
    if not isinstance(value, int) or isinstance(value, bool) or value < lowest:
        raise ValueError(f"{name} must be an integer >= {lowest}, got {value!r}")


def check_workers(name: str, value: object) -> None:
    """Raise ValueError unless `value` is None (all cores) or an int >= 1."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"{name} must be None (all cores) or an integer >= 1, got {value!r}")
