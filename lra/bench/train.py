"""`lra bench train`: training throughput with the real data pipeline vs the same batches already in memory.

Model and DataModule come from a task config through the CLI (LRACLI), so the pipeline is the one training
uses: the DataModule's train_dataloader (memory-mapped cache, padding collate, its workers). Both arms run
the same plain PyTorch step (forward, cross-entropy, backward, AdamW step: no Lightning loop, logging or
metrics) on the same sequence of batches; only where a batch comes from differs, so the gap in throughput, and
more directly the time the pipeline arm waits for its next batch, is the cost of data loading. The arms
alternate over --repeats rounds, each round starting with the other; each figure is the median over rounds.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from lra.bench.measure import MALLOC, apply_malloc, sync
from lra.data import LRADataModule
from lra.module import LRAClassifier
from lra.training.lightning_cli import LRACLI

Batch = dict[str, Tensor]
QUIET = ["--trainer.logger=false", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """This command's options, and the CLI arguments after `--` (passed to LRACLI as they are)."""
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        prog="lra bench train",
        description=__doc__.splitlines()[0],
        epilog="Arguments after `--` go to the CLI as they are, e.g. -- --data.num_workers 2 --model.depth 4",
    )
    parser.add_argument("--config", required=True, help="task config, e.g. tasks/listops.yaml")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per arm and round (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per arm and round first (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; each arm's figure is the median")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument(
        "--malloc",
        default="keep",
        choices=tuple(MALLOC),
        help="CPU: keep freed memory for reuse (default, as lra bench attention) or leave the system malloc",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, e.g. --set data.num_train=2000 (repeatable; same as -- --KEY VALUE)",
    )
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.repeats < 1:
        parser.error("--steps and --repeats must be >= 1 and --warmup >= 0")
    for item in args.set:
        key, sep, _ = item.partition("=")
        if not sep or not key:
            parser.error(f"--set {item!r}: expected KEY=VALUE, e.g. --set data.num_train=2000")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    return args, passthrough


def build(args: argparse.Namespace, passthrough: list[str]) -> tuple[LRAClassifier, LRADataModule]:
    """Model and DataModule as `lightning fit --config ...` would build them (trainer logging off)."""
    overrides = [f"--{item}" for item in args.set]
    with warnings.catch_warnings():  # `lra bench train ...` is on sys.argv; the CLI reads only `args`
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        cli = LRACLI(args=["--config", args.config, *QUIET, *overrides, *passthrough], run=False)
    return cli.model, cli.datamodule


def real_batches(datamodule: LRADataModule) -> Iterator[Batch]:
    """The DataModule's train_dataloader, epoch after epoch (a fresh loader repeats the same seeded order)."""
    loader = datamodule.train_dataloader()
    while True:
        yield from loader


def to_device(batch: Batch, device: torch.device) -> Batch:
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


def train_step(model: LRAClassifier, optimizer: torch.optim.Optimizer, batch: Batch) -> None:
    """The training step of LRAClassifier in plain PyTorch: forward, cross-entropy, backward, optimizer step."""
    loss = model.loss(model(batch), batch["label"])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


@dataclass
class ArmRun:
    """One round of one arm: wall seconds of the timed steps, seconds of those spent waiting for batches, tokens."""

    seconds: float
    wait: float
    tokens: int


def run_arm(
    model: LRAClassifier, optimizer: torch.optim.Optimizer, batches: Iterator[Batch], args: argparse.Namespace
) -> ArmRun:
    """--steps timed steps after --warmup untimed ones; waiting = fetching the next batch and moving it."""
    device = torch.device(args.device)
    for batch in itertools.islice(batches, args.warmup):
        train_step(model, optimizer, to_device(batch, device))
    tokens, wait = 0, 0.0
    sync(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        fetch = time.perf_counter()
        batch = to_device(next(batches), device)
        wait += time.perf_counter() - fetch
        train_step(model, optimizer, batch)
        tokens += sum(value.numel() for key, value in batch.items() if key.startswith("tokens"))
    sync(device)
    return ArmRun(time.perf_counter() - start, wait, tokens)


def main(argv: list[str] | None = None) -> int:
    args, passthrough = parse_args(sys.argv[1:] if argv is None else argv)
    model, datamodule = build(args, passthrough)
    device = torch.device(args.device)
    if device.type == "cpu":
        args.malloc = apply_malloc(args.malloc)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model.to(device).train()
    hparams = model.hparams
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=hparams.lr, betas=tuple(hparams.betas), weight_decay=hparams.weight_decay
    )
    # The in-memory arm: the exact batches the pipeline arm will see (same seeded order), collated once.
    cached = [to_device(b, device) for b in itertools.islice(real_batches(datamodule), args.warmup + args.steps)]

    results: dict[str, list[ArmRun]] = {"pipeline": [], "memory": []}
    for round_ in range(args.repeats):
        for arm in ("pipeline", "memory") if round_ % 2 == 0 else ("memory", "pipeline"):  # no order bias
            batches = real_batches(datamodule) if arm == "pipeline" else iter(cached)
            results[arm].append(run_arm(model, optimizer, batches, args))
            del batches  # lets the loader and its worker processes go

    attention = hparams.attention if isinstance(hparams.attention, str) else ",".join(hparams.attention)
    print(
        f"training throughput: {args.config}, {datamodule.describe()}\n"
        f"model: {attention}, depth {hparams.depth}, dim {hparams.dim}, heads {hparams.heads}; "
        f"batch {datamodule.batch_size}; device {device}, {torch.get_num_threads()} threads, "
        f"data workers {datamodule.num_workers}, malloc {args.malloc if device.type == 'cpu' else '-'}\n"
        "both arms: the same plain PyTorch step (forward, cross-entropy, backward, AdamW) on the same batches; "
        "only the batches' source differs\n"
        f"median of {args.repeats} rounds of {args.steps} steps after {args.warmup} warm-up; tokens = padded "
        "positions; wait = time to fetch the next batch and move it to the device"
    )
    print(f"{'arm':<52} {'steps/s':>8} {'tokens/s':>10} {'ms/step':>8} {'wait ms':>8} {'wait %':>7}")
    labels = {
        "pipeline": f"real data pipeline (train_dataloader, num_workers={datamodule.num_workers})",
        "memory": "in memory (pre-collated batches in a list)",
    }
    rate: dict[str, float] = {}
    for arm, runs in results.items():
        seconds = statistics.median(run.seconds for run in runs)
        wait = statistics.median(run.wait / run.seconds for run in runs)
        tokens = statistics.median(run.tokens / run.seconds for run in runs)
        rate[arm] = args.steps / seconds
        print(
            f"{labels[arm]:<52} {rate[arm]:>8.2f} {tokens:>10.0f} {1e3 / rate[arm]:>8.1f} "
            f"{1e3 * wait / rate[arm]:>8.2f} {wait:>7.2%}"
        )
    cost = 1 - rate["pipeline"] / rate["memory"]
    print(f"data pipeline cost: {cost:.1%} of throughput (1 - pipeline steps/s / in-memory steps/s)")
    waited = statistics.median(run.wait / run.seconds for run in results["pipeline"])
    print(f"training waited for the pipeline {waited:.2%} of its time (the direct measure; the cost above is noisier)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
