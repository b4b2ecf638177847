"""`lra data verify`: summarise a task's token cache and check it against the LRA benchmark's data (Tay et al., 2021,
arXiv 2011.04006; README, "Prepare and verify")."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lra.data.base import SPLITS, LRADataModule
from lra.data.cache import RaggedSplit, read_settings
from lra.protocol import padded_length

_COUNT_CHUNK = 1 << 26  # tokens counted at a time (the splits are memory-mapped; Path-X's train is 2.6 GB)


@dataclass
class SplitSummary:
    """What one cached split holds: size, label counts, and per tower the length and token-id ranges."""

    name: str
    size: int
    label_counts: list[int]
    lengths: list[tuple[int, float, int]]  # per tower: (min, mean, max)
    token_range: list[tuple[int, int]]  # per tower: (smallest id, largest id)
    masked: list[float] = field(default_factory=list)  # per tower: fraction of the pooled positions masked


@dataclass
class Report:
    """A summary of every split and the disagreements found (empty when the data is as expected)."""

    description: str
    splits: list[SplitSummary]
    problems: list[str] = field(default_factory=list)
    tokens: str = ""  # the tokenisation and masking in use
    pooled_length: int = 0  # the positions a sequence occupies for the model (see masked_fraction)

    def lines(self) -> list[str]:
        """A readable table of the splits, then the problems (or that there are none)."""
        out = [self.description]
        if self.tokens:
            out.append(f"  tokens: {self.tokens}")
            out.append(
                f"  masked: the fraction of each sequence's {self.pooled_length:,} positions that the model masks"
            )
        for split in self.splits:
            total = max(split.size, 1)
            balance = " ".join(f"{label}:{count / total:.1%}" for label, count in enumerate(split.label_counts))
            out.append(f"  {split.name:<5} {split.size:>9,} examples   labels {balance}")
            for tower, ((low, mean, high), (smallest, largest)) in enumerate(
                zip(split.lengths, split.token_range, strict=True)
            ):
                name = f"tower {'ab'[tower]}: " if len(split.lengths) > 1 else ""
                masked = f"   masked {split.masked[tower]:.3f}" if split.masked else ""
                out.append(
                    f"        {name}length min {low:,} mean {mean:,.1f} max {high:,}   token ids {smallest}..{largest}"
                    f"{masked}"
                )
        out.extend(f"PROBLEM: {problem}" for problem in self.problems)
        if not self.problems:
            out.append("OK: sizes, labels, lengths and token ids agree with LRA (Tay et al., 2021, arXiv 2011.04006)")
        return out


def masked_fraction(data: RaggedSplit, tower: int, pooled_length: int, masks_zeros: bool) -> float:
    """Of the split's N × pooled_length positions (padding included), the fraction the model masks: the padding,
    and with `masks_zeros` every token id 0 too (faithful protocol: black pixels)."""
    tokens = data.tokens[tower]
    real = sum(
        int(np.count_nonzero(tokens[start : start + _COUNT_CHUNK]))
        if masks_zeros
        else len(tokens[start : start + _COUNT_CHUNK])
        for start in range(0, len(tokens), _COUNT_CHUNK)
    )
    positions = len(data) * pooled_length
    return 1.0 - real / positions if positions else 0.0


def summarise(data: RaggedSplit, name: str, num_classes: int) -> SplitSummary:
    """Counts and ranges of one split, read from its memory-mapped arrays."""
    labels = np.asarray(data.labels)
    counts = np.bincount(labels[(labels >= 0) & (labels < num_classes)], minlength=num_classes)
    lengths, token_range = [], []
    for tower, tokens in enumerate(data.tokens):
        sizes = data.lengths(tower)
        lengths.append((int(sizes.min()), float(sizes.mean()), int(sizes.max())) if sizes.size else (0, 0.0, 0))
        token_range.append((int(tokens.min()), int(tokens.max())) if tokens.size else (0, 0))
    return SplitSummary(name, len(data), counts.tolist(), lengths, token_range)


def verify(datamodule: LRADataModule) -> Report:
    """Build the cache if needed, summarise it, and list every disagreement with the task's expectations."""
    datamodule.prepare_data()
    datamodule.setup()
    folder = datamodule.cache_path
    # Faithful: the reference pads to max_length rounded up to 2^k and pools over it; clean: max_length.
    faithful = datamodule.protocol == "faithful"
    pooled_length = padded_length(datamodule.max_length) if faithful else datamodule.max_length
    summaries, problems = [], []
    for split in SPLITS:
        data = datamodule.dataset(split).data
        summary = summarise(data, split, datamodule.num_classes)
        summary.masked = [
            masked_fraction(data, tower, pooled_length, datamodule.masks_zeros) for tower in range(len(data.tokens))
        ]
        summaries.append(summary)
        problems.extend(_split_problems(datamodule, data, summary))
    expected = datamodule.reference_sizes()
    sizes = {summary.name: summary.size for summary in summaries}
    if expected is not None and sizes != expected:
        problems.append(f"split sizes {sizes} differ from the expected {expected}")
    if read_settings(folder)["vocab_size"] != datamodule.vocab_size:
        problems.append(f"the cache at {folder} was built for another vocabulary size; delete it to rebuild")
    description = f"{datamodule.describe()}\n  cache: {folder}"
    return Report(description, summaries, problems, datamodule.token_summary(), pooled_length)


def _split_problems(datamodule: LRADataModule, data: RaggedSplit, summary: SplitSummary) -> list[str]:
    name, problems = summary.name, []
    if summary.size == 0:
        return [f"{name}: the split is empty"]
    labels = np.asarray(data.labels)
    outside = labels[(labels < 0) | (labels >= datamodule.num_classes)]
    if outside.size:
        problems.append(f"{name}: labels outside 0..{datamodule.num_classes - 1}: {sorted(set(outside.tolist()))}")
    missing = [label for label, count in enumerate(summary.label_counts) if count == 0]
    if name == "train" and missing:
        problems.append(f"train: classes {missing} never occur (expected all {datamodule.num_classes})")
    lowest_id = 0 if datamodule.fixed_length else 1  # where sequences are padded, id 0 is padding only
    for tower, ((low, _, high), (smallest, largest)) in enumerate(
        zip(summary.lengths, summary.token_range, strict=True)
    ):
        where = f"{name}" + (f" tower {'ab'[tower]}" if len(summary.lengths) > 1 else "")
        if low < 1:
            problems.append(f"{where}: an empty sequence")
        if high > datamodule.max_length:
            problems.append(f"{where}: a sequence of {high} tokens, longer than max_length {datamodule.max_length}")
        if datamodule.fixed_length and low != datamodule.max_length:
            problems.append(f"{where}: lengths {low}..{high}, expected every one exactly {datamodule.max_length}")
        if smallest < lowest_id or largest >= datamodule.vocab_size:
            problems.append(
                f"{where}: token ids {smallest}..{largest}, expected {lowest_id}..{datamodule.vocab_size - 1}"
            )
    return problems
