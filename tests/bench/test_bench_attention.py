"""`lra bench attention` on tiny problems: table, CSV, PNG, skipped and out-of-memory entries, FLOPs, memory."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image
from torch import Tensor

from lra.attention import ATTENTIONS, Attention
from lra.bench.attention import main, parse_args
from lra.bench.report import CSV_COLUMNS, exponent

NAMES = ["softmax", "linear", "nala"]
# --malloc system: leave this test process's allocator alone (keep_freed_memory is tested in a subprocess).
TINY = ["--lengths", "64,128", "--batch", "2", "--repeats", "1", "--warmup", "0", "--malloc", "system"]


@pytest.fixture
def small_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 256² matmul for the ceiling: the test is about the table, not the rate."""
    monkeypatch.setattr("lra.bench.attention.ceiling_size", lambda device: 256)


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[list[list[str]], list[dict]]:
    """Run the command; the main table's rows (split on spaces) and the CSV's rows."""
    assert main([*TINY, "--out", str(tmp_path), *extra]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:3] == ["length", "attention", "status"]) + 1
    table = [line.split() for line in lines[start:] if line.strip()]
    table = table[: next((i for i, row in enumerate(table) if not row[0].isdigit()), len(table))]
    with open(tmp_path / "attention-cpu-float32.csv") as f:
        return table, list(csv.DictReader(f))


class OutOfMemoryAttention(Attention):
    """Identity attention that fails like a full allocator from length 128 on, after ``ok_calls`` calls there."""

    name = "oom_test"
    ok_calls = 0
    calls = 0

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        if q.shape[-2] >= 128:
            type(self).calls += 1
            if type(self).calls > self.ok_calls:
                raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
        return v


@pytest.mark.usefixtures("small_ceiling")
def test_table_csv_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table, rows = run(tmp_path, capsys, "--attention", ",".join(NAMES))
    assert [(row[0], row[1], row[2]) for row in table] == [(n, a, "ok") for n in ("64", "128") for a in NAMES]
    softmax, linear = table[0], table[1]
    assert softmax[4] == "1.00x" and linear[5] == "1.00x"  # time vs softmax, vs linear
    assert softmax[7] == "1.00x" and linear[8] == "1.00x"  # memory vs softmax, vs linear
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [(row["length"], row["attention"]) for row in rows] == [(n, a) for n in ("64", "128") for a in NAMES]
    for row in rows:
        assert float(row["ms"]) > 0 and float(row["peak_mb"]) > 0 and float(row["gflop"]) > 0
        assert float(row["ceiling_fraction"]) > 0
        settings = (row["device"], row["dtype"], row["batch"], row["compile"], row["malloc"])
        assert settings == ("cpu", "float32", "2", "False", "system")
    # FLOPs: linear-time attentions double with the length, softmax's attention part quadruples.
    gflop = {(row["attention"], row["length"]): float(row["gflop"]) for row in rows}
    assert gflop[("nala", "128")] == pytest.approx(2 * gflop[("nala", "64")])
    assert gflop[("softmax", "128")] > 2.2 * gflop[("softmax", "64")]
    with Image.open(tmp_path / "attention-cpu-float32.png") as image:
        assert image.size == (1200, 500)
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 10  # not blank


@pytest.mark.usefixtures("small_ceiling")
def test_skipped_and_out_of_memory_entries_are_reported_not_fatal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ATTENTIONS, "oom_test", OutOfMemoryAttention)
    monkeypatch.setattr(OutOfMemoryAttention, "calls", 0)
    table, rows = run(tmp_path, capsys, "--attention", "softmax,oom_test,linear", "--skip", "softmax@128")
    status = {(row[1], row[0]): row[2] for row in table}
    assert status == {
        ("softmax", "64"): "ok",
        ("oom_test", "64"): "ok",
        ("linear", "64"): "ok",
        ("softmax", "128"): "skipped",
        ("oom_test", "128"): "oom",
        ("linear", "128"): "ok",
    }
    for row in rows:
        if row["status"] != "ok":
            assert row["ms"] == row["peak_mb"] == row["softmax_ms_per_ms"] == ""
    assert next(row for row in rows if row["attention"] == "linear" and row["length"] == "128")["ms"]


@pytest.mark.usefixtures("small_ceiling")
def test_out_of_memory_while_timed_leaves_the_rotation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ATTENTIONS, "oom_test", OutOfMemoryAttention)
    monkeypatch.setattr(OutOfMemoryAttention, "calls", 0)
    monkeypatch.setattr(OutOfMemoryAttention, "ok_calls", 2)  # the memory and FLOP steps pass, timing fails
    table, _ = run(tmp_path, capsys, "--attention", "oom_test,linear", "--lengths", "128", "--repeats", "2")
    assert [(row[1], row[2]) for row in table] == [("oom_test", "oom"), ("linear", "ok")]


def test_arguments() -> None:
    assert parse_args([]).attention == list(ATTENTIONS)  # every registered attention by default
    assert parse_args(["--skip", "softmax@16384,linear@8"]).skip == [("softmax", 16384), ("linear", 8)]
    for bad in (["--attention", "softmax,nope"], ["--skip", "softmax"], ["--skip", "nope@8"], ["--repeats", "0"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_growth_exponent() -> None:
    assert exponent([(1024, 2.0), (2048, None), (4096, 32.0)]) == pytest.approx(2.0)
    assert exponent([(1024, 2.0)]) is None
