"""The attention benchmark command on a tiny problem: it runs and prints one row per length and attention."""

from __future__ import annotations

import pytest

from lra.bench.attention import main


def test_bench_prints_a_table_with_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--lengths", "16,32", "--batch", "1", "--dim", "8", "--heads", "2", "--repeats", "2", "--warmup", "1"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[2:]]
    assert [(row[0], row[1]) for row in rows] == [
        (length, name) for length in ("16", "32") for name in ("softmax", "linear", "nala")
    ]
    for row in rows:
        assert float(row[2]) > 0
    softmax_row, linear_row = rows[0], rows[1]
    assert softmax_row[3] == "1.00x" and linear_row[4] == "1.00x"


def test_bench_rejects_unknown_attention(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--attention", "softmax,reformer"])
    assert "reformer" in capsys.readouterr().err
