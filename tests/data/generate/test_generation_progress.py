"""Generation a user can follow and interrupt: progress counted across worker processes, the estimate before a run,
the rate remembered after it, and Ctrl-C (a real SIGINT) leaving no half-written folder behind."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.progress import Terminal, bar_counts, progress_lines, show_every_update, use_stderr

from lra.data import cache, progress
from lra.data import pathfinder as pathfinder_data
from lra.data.commands import main as data_main
from lra.data.generate import pathfinder as pathfinder_generator
from lra.data.generate.listops import ListOpsSpec, generate_listops
from lra.data.generate.pathfinder import generate_pathfinder
from lra.data.listops import ListOpsDataModule
from lra.data.pathfinder import PathfinderDataModule

REPO = Path(__file__).resolve().parents[3]
TINY = ListOpsSpec(max_depth=3, max_args=3, min_length=1, max_length=40)
LEVEL = "pathfinder32/curv_baseline"


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def dead_pid() -> int:
    """The id of a process that has ended (a child that ran and was waited for)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("workers", [1, 2])
def test_a_terminal_shows_the_images_of_all_workers_until_the_last(
    tmp_path: Path, terminal: Terminal, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Workers (forked after these patches) take 50 ms per image and the parent polls every 10 ms, so on any
    # machine the parent reads counts between the first and the last image.
    count_written = pathfinder_generator._count_written
    monkeypatch.setattr(pathfinder_generator, "_count_written", lambda count: (time.sleep(0.05), count_written(count)))
    monkeypatch.setattr(pathfinder_generator, "POLL_S", 0.01)
    level = generate_pathfinder(tmp_path, 32, 6, 40, seed=1, workers=workers, shard_size=8, cache_dir=tmp_path)
    counts = bar_counts(terminal.getvalue(), 40)
    assert "generating Pathfinder-32 images:" in terminal.getvalue()
    assert counts == sorted(counts) and len(set(counts)) >= 3 and counts[-1] == 40
    assert len(list(level.rglob("*.png"))) == 40


def test_a_terminal_shows_listops_examples_until_the_last(tmp_path: Path, terminal: Terminal) -> None:
    generate_listops(tmp_path, 1100, 100, 100, seed=0, spec=TINY, workers=2, cache_dir=tmp_path)
    counts = bar_counts(terminal.getvalue(), 1300)
    assert "generating ListOps examples:" in terminal.getvalue()
    assert counts == sorted(counts) and len(set(counts)) >= 3 and counts[-1] == 1300


def test_off_a_terminal_generation_writes_progress_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    stream = io.StringIO()
    use_stderr(monkeypatch, stream)
    show_every_update(monkeypatch)
    caplog.set_level(logging.INFO, logger="lra.data")
    generate_pathfinder(tmp_path, 32, 6, 20, seed=1, workers=1, shard_size=8, cache_dir=tmp_path)
    lines = progress_lines(messages(caplog), "generating Pathfinder-32 images")
    assert [line.split(",")[0].split(": ")[1] for line in lines] == [f"{n}/20 ({n * 5}%)" for n in range(2, 21, 2)]
    assert stream.getvalue() == ""


def test_the_switch_silences_generation_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, terminal: Terminal, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lra.data")
    monkeypatch.setenv(progress.MODE_ENV, "off")
    generate_pathfinder(tmp_path / "a", 32, 6, 20, seed=1, workers=2, shard_size=8, cache_dir=tmp_path)
    use_stderr(monkeypatch, io.StringIO())  # off a terminal too
    generate_pathfinder(tmp_path / "b", 32, 6, 20, seed=1, workers=1, shard_size=8, cache_dir=tmp_path)
    assert terminal.getvalue() == ""
    assert progress_lines(messages(caplog), "generating Pathfinder-32 images") == []
    assert sum("generating 20 Pathfinder-32 images" in message for message in messages(caplog)) == 2  # still said


def test_prepare_shows_generation_then_each_split_of_the_cache(tmp_path: Path, terminal: Terminal) -> None:
    datamodule = ListOpsDataModule(
        num_train=600, num_val=50, num_test=50, spec=TINY, max_length=40, cache_dir=str(tmp_path), generate_workers=1
    )
    datamodule.prepare_data()
    text = terminal.getvalue()
    assert bar_counts(text, 700)[-1] == 700
    generation_ends = text.index("700/700 [")
    for split, size in (("train", 600), ("val", 50), ("test", 50)):
        assert text.index(f"caching listops-generated {split}:") > generation_ends
        assert bar_counts(text, size)[-1] == size


def test_the_estimate_uses_the_built_in_rate_then_the_one_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(progress, "MIN_MEASURED_S", 0.0)
    caplog.set_level(logging.INFO, logger="lra.data")
    generate_pathfinder(tmp_path / "a", 32, 14, 12, seed=1, workers=1, cache_dir=tmp_path)
    measured = progress.remembered_rate(tmp_path, "pathfinder-32px-contour14")
    generate_pathfinder(tmp_path / "b", 32, 14, 12, seed=1, workers=1, cache_dir=tmp_path)
    first, second = [message for message in messages(caplog) if message.startswith("generating 12 ")]
    assert first.startswith(
        "generating 12 Pathfinder-32 images (curv_contour_length_14) on 1 worker, about 0 s at 200 images/s per "
        "worker (the built-in rate; none measured on this machine yet)"
    )
    assert measured is not None and f"at {measured:,.0f} images/s per worker (the last measured rate)" in second


def test_a_short_run_is_not_remembered(tmp_path: Path) -> None:
    generate_pathfinder(tmp_path, 32, 6, 5, seed=1, workers=1, cache_dir=tmp_path)
    assert not (tmp_path / progress.RATES_FILE).exists()


def test_an_existing_level_is_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arguments = ["generate", "pathfinder", "--out", str(tmp_path), "--difficulty", "6", "--n", "4", "--workers", "1"]
    assert data_main(arguments) == 0
    before = sorted(path.stat().st_mtime_ns for path in (tmp_path / LEVEL).rglob("*.png"))
    capsys.readouterr()
    assert data_main(arguments) == 1
    assert capsys.readouterr().err == (
        f"lra data generate pathfinder: {tmp_path / LEVEL} already exists; delete it or choose another output folder\n"
    )
    assert sorted(path.stat().st_mtime_ns for path in (tmp_path / LEVEL).rglob("*.png")) == before


def test_leftovers_of_a_killed_run_on_this_machine_are_removed_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lra.data")
    parent = tmp_path / "pathfinder32"
    prefix = ".curv_baseline.tmp-"
    killed = parent / f"{prefix}{cache._HOST}-{dead_pid()}-0123abcd"
    running = parent / f"{prefix}{cache._HOST}-{os.getpid()}-0123abcd"  # a live process: still being written
    elsewhere = parent / f"{prefix}other.host-{dead_pid()}-0123abcd"  # another machine's (shared cache root)
    for folder in (killed, running, elsewhere):
        (folder / "imgs" / "0").mkdir(parents=True)
        (folder / "imgs" / "0" / "sample_0.png").write_bytes(b"half")
    generate_pathfinder(tmp_path, 32, 6, 3, seed=1, workers=1, cache_dir=tmp_path)
    assert not killed.exists() and running.exists() and elsewhere.exists()
    assert f"removing {killed}, left by an interrupted run" in "\n".join(messages(caplog))
    assert len(list((tmp_path / LEVEL).rglob("*.png"))) == 3


def test_ctrl_c_mid_generation_leaves_no_partial_folder_and_a_rerun_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    out, cache_root = tmp_path / "out", tmp_path / "cache"
    env = {**os.environ, "LRA_CACHE_DIR": str(cache_root), "PYTHONUNBUFFERED": "1", "LRA_PROGRESS": "auto"}
    arguments = ["generate", "pathfinder", "--out", str(out), "--difficulty", "6"]
    interrupted = subprocess.Popen(
        [sys.executable, "-m", "lra", "data", *arguments, "--n", "100000", "--workers", "2"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, which the SIGINT goes to as a terminal's Ctrl-C does
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # even if this shell ignores SIGINT
    )
    try:
        deadline = time.monotonic() + 180
        while not any(out.rglob("sample_*.png")):  # the workers have started writing images
            assert interrupted.poll() is None, interrupted.communicate()
            assert time.monotonic() < deadline, "no image was written in 180 s"
            time.sleep(0.05)
        os.killpg(interrupted.pid, signal.SIGINT)
        _, stderr = interrupted.communicate(timeout=120)
    finally:
        if interrupted.poll() is None:
            os.killpg(interrupted.pid, signal.SIGKILL)
            interrupted.wait()
    assert interrupted.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.rstrip().endswith("lra data: interrupted; unfinished folders were removed")
    assert "interrupted: removing the unfinished" in stderr
    with pytest.raises(ProcessLookupError):
        os.killpg(interrupted.pid, 0)  # no worker outlived it
    assert [path for path in out.rglob("*") if path.is_file()] == []
    assert [path.name for path in out.rglob("*")] in ([], ["pathfinder32"])  # no partial level folder
    assert not cache_root.exists() or not any(cache_root.iterdir())  # nor a rate from an unfinished run

    # The next run starts cleanly (here in-process, which is quicker than another start of Python and torch).
    monkeypatch.setenv("LRA_CACHE_DIR", str(cache_root))
    caplog.set_level(logging.INFO, logger="lra.data")
    assert data_main([*arguments, "--n", "6", "--workers", "1"]) == 0
    assert any(message.startswith("generating 6 Pathfinder-32 images (curv_baseline)") for message in messages(caplog))
    assert len(list((out / LEVEL).rglob("*.png"))) == 6
    assert [path.name for path in (out / "pathfinder32").iterdir()] == ["curv_baseline"]


@pytest.mark.parametrize("stage", ["generating", "caching"])
def test_ctrl_c_while_preparing_leaves_only_complete_folders_in_the_cache_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, stage: str
) -> None:
    """Ctrl-C (KeyboardInterrupt in the parent, worker pools running) while the images are generated or while the
    token cache is written from them: the cache root keeps only complete folders, and the next prepare finishes."""
    caplog.set_level(logging.INFO, logger="lra.data")
    advance_to = progress.Progress.advance_to

    def interrupted(self: progress.Progress, done: int) -> None:
        advance_to(self, done)
        if self.what.startswith(stage) and done > 0:
            raise KeyboardInterrupt

    settings = {"difficulty": 6, "num_images": 60, "workers": 2, "cache_dir": str(tmp_path), "num_workers": 0}
    monkeypatch.setattr(pathfinder_data, "GENERATED_SHARD_SIZE", 8)  # several shards, so a pool generates them
    monkeypatch.setattr(pathfinder_data, "DECODE_CHUNK", 8)  # several chunks, so a pool decodes them
    monkeypatch.setattr(progress.Progress, "advance_to", interrupted)
    with pytest.raises(KeyboardInterrupt):
        PathfinderDataModule(**settings).prepare_data()
    left = sorted(path.name.rsplit("-", 1)[0] for path in tmp_path.iterdir())
    assert left == ([] if stage == "generating" else ["pathfinder-generated-png"])  # complete folders only
    assert "interrupted: removing the unfinished" in "\n".join(messages(caplog))

    monkeypatch.setattr(progress.Progress, "advance_to", advance_to)
    caplog.clear()
    datamodule = PathfinderDataModule(**settings)
    datamodule.prepare_data()
    datamodule.setup()
    assert len(datamodule.dataset("train")) == 48
    generated_again = any(message.startswith("generating 60 Pathfinder-32") for message in messages(caplog))
    assert generated_again == (stage == "generating")
