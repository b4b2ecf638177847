"""`lra bench train` on a tiny generated ListOps config: both arms run and the pipeline's cost is printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from lra.bench import BENCHMARKS
from lra.bench import main as bench_main
from lra.bench.train import parse_args

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "--data.num_train", "64", "--data.num_val", "8", "--data.num_test", "8",
    "--data.spec.max_depth", "3", "--data.spec.min_length", "5", "--data.spec.max_length", "40",
    "--data.max_length", "48",
    "--data.num_workers", "0",
    "--model.depth", "1",
]  # fmt: skip


def test_train_benchmark_on_tiny_listops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    config = str(REPO / "tasks" / "listops.yaml")
    argv = ["train", "--config", config, "--steps", "2", "--warmup", "1", "--repeats", "1", "--malloc", "system"]
    assert bench_main([*argv, "--set", "data.batch_size=4", "--", *TINY]) == 0
    out = capsys.readouterr().out
    assert "ListOps, generated" in out and "batch 4" in out and "depth 1" in out
    assert "forward, cross-entropy, backward, AdamW" in out
    pipeline = next(line for line in out.splitlines() if line.startswith("real data pipeline"))
    memory = next(line for line in out.splitlines() if line.startswith("in memory"))
    for line in (pipeline, memory):
        steps_per_s, tokens_per_s, ms_per_step, wait_ms = map(float, line.split()[-5:-1])
        assert steps_per_s > 0 and tokens_per_s > 0
        assert ms_per_step == pytest.approx(1e3 / steps_per_s, rel=0.01, abs=0.051)  # printed to 0.1 ms
        assert 0 <= wait_ms < ms_per_step
    assert "data pipeline cost:" in out and "training waited for the pipeline" in out and "of throughput" in out
    assert (tmp_path / "cache").is_dir() and not (tmp_path / "runs").exists()  # cached data, no logs


def test_train_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert "train" in BENCHMARKS
    args, passthrough = parse_args(["--config", "c.yaml", "--set", "model.depth=1", "--", "--data.root", "x"])
    assert args.set == ["model.depth=1"] and passthrough == ["--data.root", "x"]
    for bad in (["--config", "c.yaml", "--set", "model.depth"], ["--config", "c.yaml", "--steps", "0"], []):
        with pytest.raises(SystemExit):
            parse_args(bad)
    assert "KEY=VALUE" in capsys.readouterr().err
