"""`lra check attention`: the pass/fail table, the speed line beside softmax and linear, exit codes, one-line errors."""

from __future__ import annotations

import re

import pytest

from lra.check.conformance import CHECKS
from lra.cli import main

TINY = ["--dim", "16", "--long-length", "256", "--speed-lengths", "32,64", "--batch", "2", "--repeats", "1"]


def test_a_passing_attention_prints_the_table_and_the_speed_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "attention", "nala", "--kwargs", "{alpha: 2.0, variant: cosine_inhibit}", *TINY]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "nala {alpha: 2.0, variant: cosine_inhibit} (NaLaAttention): dim 16, heads 2, device cpu"
    assert lines[1].split() == ["check", "result", "measured", "tolerance"]
    for check, _, _ in CHECKS:
        row = next(line for line in lines if line.startswith(check.format(long_length=256) + " "))
        assert row.split()[len(check.split())] == "pass", row
    assert "all 10 checks passed" in lines
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["length", "this", "ms"])
    rows = [line.split() for line in lines[header + 1 :]]
    assert [row[0] for row in rows] == ["32", "64"]
    for row in rows:  # ms of this, softmax, linear; times faster than softmax; ÷ linear; peak MB
        assert all(float(value) > 0 for value in row[1:4])
        assert re.fullmatch(r"\d+\.\d\d×", row[4]) and re.fullmatch(r"\d+\.\d\d", row[5])
        assert re.fullmatch(r"\d+/\d+/\d+", row[6])
    assert "16384 is left out" not in out  # only said when the CPU defaults are in use


def test_a_failing_attention_names_the_check_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "attention", "helpers.attentions:AttendsToPadding", *TINY]) == 1
    out = capsys.readouterr().out
    assert "FAIL padding: holes: real outputs change when only padded positions change: padding leaks in" in out
    assert "2 of 10 checks FAILED: padding: holes, padding: right" in out
    assert "speed line skipped: fix the failed checks first" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nalla"], "unknown attention 'nalla'; known attentions: cosformer, hedgehog"),
        (["nala", "--kwargs", "{alpah: 2.0}"], "attention 'nala' got unexpected argument(s) alpah; it accepts: alpha"),
        (["nala", "--kwargs", "alpha"], "argument --kwargs: 'alpha': expected a YAML mapping of options"),
        (["nala", "--kwargs", "{alpha: -1.0}"], "nala: alpha must be > 0, got -1.0"),
        (["no_such.layers:Attn"], "importing 'no_such.layers' failed with ModuleNotFoundError"),
        (["nala", "--speed-lengths", "1k"], "'1k': expected comma-separated lengths"),
    ],
)
def test_what_cannot_be_checked_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["check", "attention", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("lra check attention: error: ")
    assert message in err.splitlines()[-1]


def test_lra_check_lists_its_checks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--help"]) == 0
    assert "  attention  the conformance kit on an attention" in capsys.readouterr().out
