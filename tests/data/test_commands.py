"""`lra data prepare|verify|generate`, run in-process through `lra.cli.main`."""

from __future__ import annotations

from pathlib import Path

import pytest

from lra.cli import main
from lra.data.generate.listops import ListOpsSpec
from lra.data.tasks import TASKS, build_datamodule

SHALLOW = ["--spec.max_depth", "2", "--spec.max_args", "3", "--spec.min_length", "1"]


def tiny_listops(cache: Path, *extra: str) -> list[str]:
    sizes = ["--num_train", "80", "--num_val", "30", "--num_test", "30", "--generate_workers", "1"]
    return ["listops", "--cache_dir", str(cache), *sizes, *SHALLOW, *extra]


def test_prepare_builds_the_cache_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "prepare", *tiny_listops(tmp_path)]) == 0
    first = capsys.readouterr()
    assert "building the token cache" in first.err
    folder = next(tmp_path.glob("listops-generated-[0-9a-f][0-9a-f]*"))
    assert f"token cache: {folder}" in first.out
    assert main(["data", "prepare", *tiny_listops(tmp_path)]) == 0
    second = capsys.readouterr()
    assert "token cache hit" in second.err and "building" not in second.err


def test_prepare_and_fit_share_one_cache_for_the_same_settings(tmp_path: Path) -> None:
    """`lra data prepare TASK` uses the settings of tasks/TASK.yaml, so `lightning fit` finds its cache."""
    from_command = build_datamodule("listops", cache_dir=str(tmp_path))
    from_class = TASKS["listops"].datamodule(cache_dir=str(tmp_path))
    assert from_command.cache_path == from_class.cache_path


def test_verify_passes_on_consistent_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "verify", *tiny_listops(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train        80 examples" in out and "val          30 examples" in out
    assert "token ids 1..14" in out  # faithful: the brackets, and so X (15), are dropped
    assert "  tokens: alphanumeric tokens (brackets dropped: MAX 2 9); protocol faithful" in out
    assert "masked: the fraction of each sequence's 2,048 positions that the model masks" in out
    assert "OK: sizes, labels, lengths and token ids agree" in out
    assert main(["data", "verify", *tiny_listops(tmp_path, "--protocol", "clean")]) == 0
    clean = capsys.readouterr().out
    assert "token ids 1..15" in clean and "closing_x tokens" in clean and "2,000 positions" in clean


def test_verify_reports_the_black_pixels_the_faithful_protocol_masks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """About 2/3 of a Pathfinder image is black: the faithful protocol treats those pixels as padding."""
    settings = ["pathfinder", "--num_images", "200", "--workers", "1", "--cache_dir", str(tmp_path)]
    assert main(["data", "verify", *settings]) == 0
    faithful = capsys.readouterr().out
    fractions = [float(line.rsplit("masked ", 1)[1]) for line in faithful.splitlines() if "   masked " in line]
    assert len(fractions) == 3 and all(0.6 < fraction < 0.72 for fraction in fractions)
    assert main(["data", "verify", *settings, "--protocol", "clean"]) == 0
    clean = capsys.readouterr().out
    assert [line.rsplit("masked ", 1)[1] for line in clean.splitlines() if "   masked " in line] == ["0.000"] * 3


def test_verify_fails_loudly_on_disagreement(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    official = tmp_path / "official"
    official.mkdir()
    for split in ("train", "val", "test"):
        (official / f"basic_{split}.tsv").write_text("Source\tTarget\n( [MAX 2 3 ] )\t3\n[SM 4 ]\t3\n")
    code = main(["data", "verify", "listops", "--root", str(official), "--cache_dir", str(tmp_path / "cache")])
    out = capsys.readouterr().out
    assert code == 1
    assert "labels 0:0.0% 1:0.0% 2:0.0% 3:100.0%" in out
    assert "PROBLEM: train: classes [0, 1, 2, 4, 5, 6, 7, 8, 9] never occur (expected all 10)" in out
    assert "PROBLEM: split sizes {'train': 2, 'val': 2, 'test': 2} differ from the expected" in out
    assert "{'train': 96000, 'val': 2000, 'test': 2000}" in out


def test_verify_reports_length_ranges_per_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["data", "verify", *tiny_listops(tmp_path)])
    lengths = [line for line in capsys.readouterr().out.splitlines() if "length min" in line]
    datamodule = build_datamodule(
        "listops", cache_dir=str(tmp_path), num_train=80, num_val=30, num_test=30, spec=ListOpsSpec(2, 3, 1)
    )
    datamodule.setup()
    assert len(lengths) == 3
    for line, split in zip(lengths, ("train", "val", "test"), strict=True):
        sizes = datamodule.dataset(split).data.lengths()
        assert f"length min {sizes.min():,} mean {sizes.mean():,.1f} max {sizes.max():,}" in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["data", "prepare", "nosuch"], "unknown task 'nosuch'; expected one of listops, text, retrieval"),
        (["data", "verify"], "usage: lra data verify TASK [--root DIR]"),
        (["data"], "usage: lra data {generate,prepare,verify} ..."),
    ],
)
def test_unknown_commands_print_usage(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert expected in capsys.readouterr().out


def test_an_unknown_datamodule_argument_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["data", "prepare", "listops", "--cache_dir", str(tmp_path), "--max_lenght", "10"])
    assert "--max_lenght" in capsys.readouterr().err


def test_missing_data_is_reported_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["data", "prepare", "retrieval", "--root", str(tmp_path / "nowhere"), "--cache_dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("lra data prepare retrieval: Retrieval (AAN) data not found")
    assert f"{tmp_path / 'nowhere'} does not exist" in err and "Traceback" not in err
