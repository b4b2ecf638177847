"""Bring your own attention, end to end: the README's example copied into a temporary package (used by import path)
and into a tiny distribution installed into a temporary folder (used by its `lra.attentions` entry point), both
through `lightning fit`, a 2-trial `lra sweep` over the example's option and `lra check attention`; and a suite that
sets the encoder to it."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import yaml
from helpers.runs import BIN, REPO, TINY_FIT
from helpers.sweeps import TINY_LISTOPS, sweep_env, write_sweep

from lra.module import LRAClassifier
from lra.suite.command import main as suite_main

PATH = "mypkg.layers:SoftplusAttention"  # the README's example by import path
ENTRY = "softplus"  # ... and by the entry point the tiny distribution registers
PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "byo-attentions"
version = "0.1.0"

[project.entry-points."lra.attentions"]
softplus = "byo_attentions.layers:SoftplusAttention"

[tool.setuptools]
packages = ["byo_attentions"]
"""


def readme_example() -> str:
    """The Python block that follows `<!-- example:attention -->` in the README."""
    text = (REPO / "README.md").read_text()
    match = re.search(r"<!-- example:attention -->\n```python\n(.*?)```", text, re.DOTALL)
    assert match, "README.md has no <!-- example:attention --> python block"
    return match.group(1)


@dataclass
class UserCode:
    env: dict[str, str]  # PYTHONPATH: the installed distribution's folder, the package's folder, this checkout
    paths: list[Path]


@pytest.fixture(scope="module")
def user_code(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UserCode]:
    root = tmp_path_factory.mktemp("byo")
    example = readme_example()
    package = root / "src" / "mypkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "layers.py").write_text(example)
    dist = root / "dist"
    (dist / "byo_attentions").mkdir(parents=True)
    (dist / "byo_attentions" / "__init__.py").write_text("")
    (dist / "byo_attentions" / "layers.py").write_text(example)
    (dist / "pyproject.toml").write_text(PYPROJECT)
    site = root / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    result = subprocess.run([*pip, "--target", str(site), str(dist)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(site.glob("byo_attentions-0.1.0.dist-info/entry_points.txt"))
    paths = [site, root / "src"]
    pythonpath = [str(p) for p in (*paths, REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    yield UserCode({**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath), "PYTHONUNBUFFERED": "1"}, paths)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def importable(user_code: UserCode, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The user's package and distribution importable in this process, then forgotten again."""
    for path in user_code.paths:
        monkeypatch.syspath_prepend(str(path))
    yield
    for name in [name for name in sys.modules if name.split(".")[0] in ("mypkg", "byo_attentions")]:
        del sys.modules[name]


def run(user_code: UserCode, work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**user_code.env, "LRA_CACHE_DIR": str(work.parent / "shared-cache")}
    return subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=600)


def test_fit_trains_a_hybrid_of_the_entry_point_and_the_import_path(
    user_code: UserCode, importable: None, tmp_path: Path
) -> None:
    config = str(REPO / "tasks" / "listops.yaml")
    model = [
        "--model.attention",
        f"[{ENTRY}, {PATH}]",
        "--model.depth",
        "2",
        "--model.attention_kwargs",
        "{power: 3.0}",
    ]
    result = run(user_code, tmp_path, str(BIN / "lightning"), "fit", "--config", config, *TINY_FIT, *model)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "test/acc" in result.stdout
    # The best checkpoint loads back with the user's classes and option (testing from it needs them importable).
    best = next((tmp_path / "runs" / "listops" / "version_0" / "checkpoints").glob("best-*.ckpt"))
    loaded = LRAClassifier.load_from_checkpoint(best, map_location="cpu")
    first, second = (block.attention for block in loaded.model.encoder.blocks)
    assert (type(first).__module__, type(second).__module__) == ("byo_attentions.layers", "mypkg.layers")
    assert type(first).__name__ == type(second).__name__ == "SoftplusAttention"
    assert first.feature_q.power == second.feature_q.power == 3.0


def test_a_two_trial_sweep_searches_the_users_option(user_code: UserCode, tmp_path: Path) -> None:
    search = {"model.attention_kwargs.power": {"type": "float", "low": 1.0, "high": 4.0}}
    # A 2-step warm-up: torch's OneCycleLR divides by zero on a 1-step one (its first phase would be empty).
    fixed = {**TINY_LISTOPS, "model.attention": [ENTRY, PATH], "model.depth": 2, "model.warmup_steps": 2}
    sweep = write_sweep(tmp_path, n_trials=2, set=fixed, search_space=search)
    env = {**sweep_env(tmp_path), "PYTHONPATH": user_code.env["PYTHONPATH"]}
    result = subprocess.run(
        [str(BIN / "lra"), "sweep", "--config", str(sweep), "--export-best", "best.yaml"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path}/runs/sweeps/tiny.db")
    trials = study.get_trials()
    assert [trial.state for trial in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    powers = [trial.params["model.attention_kwargs.power"] for trial in trials]
    assert all(1.0 <= power <= 4.0 for power in powers) and powers[0] != powers[1]
    best = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert best["model"]["attention"] == [ENTRY, PATH]
    assert best["model"]["attention_kwargs"]["power"] == pytest.approx(study.best_trial.params[next(iter(search))])


@pytest.mark.parametrize("attention", [ENTRY, PATH])
def test_the_checker_passes_the_readme_example(user_code: UserCode, tmp_path: Path, attention: str) -> None:
    tiny = ["--dim", "16", "--long-length", "512", "--speed-lengths", "64", "--batch", "2", "--repeats", "1"]
    result = run(
        user_code, tmp_path, str(BIN / "lra"), "check", "attention", attention, "--kwargs", "{power: 3.0}", *tiny
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == f"{attention} {{power: 3.0}} (SoftplusAttention): dim 16, heads 2, device cpu"
    assert "all 10 checks passed" in lines  # the quadratic reference comes from the feature map alone
    assert re.search(r"^linear vs quadratic +pass", result.stdout, re.MULTILINE)
    assert re.search(r"^ +64 +\d", result.stdout, re.MULTILINE)  # the speed line's row


def test_a_suite_grid_encoder_is_the_users_attention(user_code: UserCode, importable: None, tmp_path: Path) -> None:
    listops = {f"data.{key}": value for key, value in (("num_train", 64), ("num_val", 32), ("num_test", 32))}
    shared = {**TINY_LISTOPS, **listops, "model.depth": 1, "data.cache_dir": str(tmp_path.parent / "shared-cache")}
    budget = {"trainer.max_steps": 4, "trainer.val_check_interval": 2, "trainer.enable_progress_bar": False}
    encoders = {"softplus": {"model.attention": ENTRY, "model.attention_kwargs": {"power": 1.5}}}
    config = tmp_path / "suite.yaml"
    config.write_text(yaml.safe_dump({"tasks": ["listops"], "set": {**shared, **budget}, "encoders": encoders}))
    out, err = io.StringIO(), io.StringIO()
    argv = ["--config", str(config), "--out", str(tmp_path / "out"), "--set", "model.warmup_steps=2"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert suite_main(argv) == 0, err.getvalue()[-3000:]
    record = json.loads((tmp_path / "out" / "results.json").read_text())["cells"]["listops/softplus/seed42"]
    assert record["status"] == "finished" and record["encoder"] == "softplus"
    assert record["attention"] == f"{ENTRY} {{power: 1.5}}" and 0.0 <= record["test_acc"] <= 1.0
    loaded = LRAClassifier.load_from_checkpoint(record["best_checkpoint"], map_location="cpu")
    (block,) = loaded.model.encoder.blocks
    assert type(block.attention).__module__ == "byo_attentions.layers" and block.attention.feature_q.power == 1.5
