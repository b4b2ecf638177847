"""The byte-level tokeniser of LRA's Text and Retrieval tasks (Tay et al., 2021): token = byte + 1, 0 = padding.

Documents are read as raw bytes (never decoded), so every file tokenises, whatever its encoding.
"""

from __future__ import annotations

import numpy as np

# 256 byte values shifted up by one, plus padding (0).
VOCAB_SIZE = 257


def tokenize_bytes(data: bytes, max_length: int | None = None, where: str = "document") -> np.ndarray:
    """Token ids (uint16) of one document's first max_length bytes; `where` names it in errors.

    Raises ValueError for an empty document (it would be a sequence of padding only).
    """
    if not data:
        raise ValueError(f"{where}: empty document; expected at least one byte of text")
    return np.frombuffer(data[:max_length], dtype=np.uint8).astype(np.uint16) + 1
