"""The two protocols a run can follow: `faithful` (the code behind the published protocol-2 table) or `clean`.

Protocol 2 is the PyTorch protocol of Nyströmformer (Xiong et al., 2021, arXiv 2102.03902) as run by the
Skyformer code (Chen et al., 2021, arXiv 2111.00035, github.com/pkuzengqi/Skyformer), whose table later
linear-attention papers reuse. `faithful` does what that code does, quirks included: ListOps without its
brackets, every token id 0 masked (black pixels too), mean pooling over the fixed padded length, Text
validated on its test split, a shuffled test loader that drops its last partial batch. `clean` corrects
those five and changes nothing else. The README's "Protocols" section lists every difference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

Protocol = Literal["faithful", "clean"]
PROTOCOLS: tuple[str, ...] = ("faithful", "clean")


def check_protocol(value: object, key: str = "data.protocol") -> str:
    """`value` if it names a protocol, else a ValueError naming the key, the value and the choices."""
    if value not in PROTOCOLS:
        raise ValueError(f"{key} must be one of {', '.join(PROTOCOLS)}, got {value!r}")
    return str(value)


def config_protocol(config: Mapping[str, Any]) -> str:
    """The protocol a task config (a mapping as in tasks/*.yaml) runs under: its data.protocol, faithful by default."""
    data = config.get("data") or {}
    arguments = data.get("init_args", data) if isinstance(data, Mapping) else {}
    return str(arguments.get("protocol", "faithful"))


def padded_length(max_length: int) -> int:
    """The fixed length the reference code pads every sequence to: max_length rounded up to a power of two.

    ListOps 2000 -> 2048, Text and each Retrieval document 4000 -> 4096, images 1024 -> 1024.
    """
    return 1 << math.ceil(math.log2(max_length))
