"""End to end through the real `lightning` / `lra` commands (subprocesses), on tiny generated ListOps."""

from __future__ import annotations

import subprocess
import time
import warnings
from pathlib import Path

import pytest
import torch
from helpers.runs import REPO, TINY_FIT, TINY_FIT_VALIDATED_AT, run_command, scalars

from lra.training.lightning_cli import LRACLI

ARGS_WARNING = "args parameter is intended"  # LightningCLI's warning when given args and a command line both
COMMANDS = ("fit", "validate", "test", "predict", "data", "suite", "sweep", "bench", "check")


def fit(command: str, work: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    """`<command> fit --config tasks/listops.yaml` on tiny data, in `work`, with its cache under `work`."""
    config = str(REPO / "tasks/listops.yaml")
    return run_command(command, "fit", "--config", config, *TINY_FIT, *overrides, cwd=work, cache=work / "cache")


def listed(text: str) -> list[str]:
    """The command names a `--help` listing shows, one a line under `commands:`."""
    return [line.split()[0] for line in text.split("commands:\n", 1)[1].split("\n\n", 1)[0].splitlines()]


@pytest.fixture(scope="module")
def first_fit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    work = tmp_path_factory.mktemp("fit")
    result = fit("lightning", work)
    assert result.returncode == 0, result.stderr[-4000:]
    return work, result


def scored_test_acc(work: Path, config: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> float:
    """`lightning test --config CONFIG --ckpt_path CHECKPOINT` in this process, without logging: its test/acc."""
    monkeypatch.chdir(work)
    monkeypatch.setenv("LRA_CACHE_DIR", str(work / "cache"))
    args = ["test", f"--config={config}", f"--ckpt_path={checkpoint}", "--trainer.logger=false"]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")  # pytest's sys.argv
        cli = LRACLI(args=args)
    return float(cli.trainer.callback_metrics["test/acc"])


def test_fit_keeps_best_checkpoint_and_tests_from_it(
    first_fit: tuple[Path, subprocess.CompletedProcess[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    work, result = first_fit
    run_dir = work / "runs" / "listops" / "version_0"
    best = sorted((run_dir / "checkpoints").glob("best-*.ckpt"))
    last = run_dir / "checkpoints" / "last.ckpt"
    assert len(best) == 1
    assert last.is_file()
    assert (run_dir / "config.yaml").is_file()
    assert f"Loaded model weights from the checkpoint at {best[0].relative_to(work)}" in result.stderr
    assert "test/acc" in result.stdout
    logged = scalars(run_dir)
    assert {"train/loss", "val/acc", "val/acc_best", "test/acc", "test/loss"} <= set(logged)
    assert len(logged["val/acc"]) == len(TINY_FIT_VALIDATED_AT)
    assert ARGS_WARNING not in result.stderr
    # The test split was scored from the best-validation weights: the step of the best checkpoint is the one
    # validation with the highest val/acc, and re-scoring it gives the logged test/acc, which the last weights do not.
    val_acc = logged["val/acc"]
    assert val_acc.count(max(val_acc)) == 1
    best_step = TINY_FIT_VALIDATED_AT[val_acc.index(max(val_acc))]
    assert (
        torch.load(best[0], map_location="cpu", weights_only=False)["global_step"]
        == best_step
        != TINY_FIT_VALIDATED_AT[-1]
    )
    (logged_test_acc,) = logged["test/acc"]
    assert scored_test_acc(work, run_dir / "config.yaml", best[0], monkeypatch) == logged_test_acc
    assert scored_test_acc(work, run_dir / "config.yaml", last, monkeypatch) != logged_test_acc


def test_second_fit_hits_the_cache(first_fit: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    work, first = first_fit
    assert "generating" in first.stderr and "building the token cache" in first.stderr
    start = time.perf_counter()
    result = fit("lra", work, "--trainer.max_steps", "1", "--test_after_fit", "false")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "cache hit" in result.stderr
    assert "generating" not in result.stderr and "building" not in result.stderr
    assert time.perf_counter() - start < 60
    assert (work / "runs" / "listops" / "version_1").is_dir()
    assert ARGS_WARNING not in result.stderr


def test_python_m_lra_fits_like_the_lra_command(
    first_fit: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    """`python -m lra fit ...` (no console script needed): trains, tests, and prints no LightningCLI warning."""
    work, _ = first_fit
    config = str(REPO / "tasks/listops.yaml")
    short = ["--trainer.max_steps", "2", "--trainer.val_check_interval", "2"]
    result = run_command("-m lra", "fit", "--config", config, *TINY_FIT, *short, cwd=tmp_path, cache=work / "cache")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "cache hit" in result.stderr and "test/acc" in result.stdout
    assert len(list((tmp_path / "runs" / "listops" / "version_0" / "checkpoints").glob("best-step2-*.ckpt"))) == 1
    assert ARGS_WARNING not in result.stderr


@pytest.mark.parametrize("command", ["lra", "-m lra"])
def test_help_lists_every_command(tmp_path: Path, command: str) -> None:
    result = run_command(command, "--help", cwd=tmp_path, cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: lra {fit,validate,test,predict,data,suite,sweep,bench,check} ...")
    assert listed(result.stdout) == list(COMMANDS)
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("argv", "commands"),
    [
        (["data", "--help"], ["generate", "prepare", "verify"]),
        (["bench", "-h"], ["attention", "jobs", "listops", "pathfinder", "train"]),
        (["check", "--help"], ["attention"]),
    ],
)
def test_command_groups_list_their_commands(tmp_path: Path, argv: list[str], commands: list[str]) -> None:
    result = run_command("lra", *argv, cwd=tmp_path, cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert listed(result.stdout) == commands


@pytest.mark.parametrize("argv", [[], ["fitt"]])
def test_no_or_an_unknown_command_lists_the_commands_and_fails(tmp_path: Path, argv: list[str]) -> None:
    result = run_command("lra", *argv, cwd=tmp_path, cache=tmp_path / "cache")
    assert result.returncode == 2
    assert listed(result.stdout) == list(COMMANDS)
    assert result.stdout.rstrip().endswith("lra: unknown command 'fitt'" if argv else "lra: a command is needed")


def test_run_shorter_than_one_validation_interval_still_tests_from_a_best_checkpoint(tmp_path: Path) -> None:
    result = fit("lightning", tmp_path, "--trainer.max_steps", "4", "--trainer.val_check_interval", "1000")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "validating at step 4 instead" in result.stderr
    best = list((tmp_path / "runs" / "listops" / "version_0" / "checkpoints").glob("best-step4-*.ckpt"))
    assert len(best) == 1
    assert f"Loaded model weights from the checkpoint at {best[0].relative_to(tmp_path)}" in result.stderr


def test_lra_data_generate_writes_official_tsvs(tmp_path: Path) -> None:
    result = run_command(
        "lra", "data", "generate", "listops", "--out", str(tmp_path / "listops"), "--train", "20", "--val", "5",
        "--test", "5", "--seed", "3", "--max-depth", "3", "--min-length", "3", "--max-length", "40",
        cwd=tmp_path, cache=tmp_path / "cache",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    train = (tmp_path / "listops" / "basic_train.tsv").read_text().splitlines()
    assert train[0] == "Source\tTarget"
    assert len(train) == 21
    assert "generated 30 examples" in result.stdout


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (["--data.root", "/nonexistent/lra_release"], "/nonexistent/lra_release"),
        (["--model.attention", "nalla"], "unknown attention ['nalla']"),
        (["--model.attention_kwargs", "{alpha: -1.0}"], "alpha must be > 0, got -1.0"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path: Path, override: list[str], expected: str) -> None:
    result = fit("lightning", tmp_path, *override)
    assert result.returncode != 0
    assert expected in result.stderr
