"""The import graph of `lra`: every module imports in a fresh interpreter, the graph has no cycle, nothing imports
the entry points (`lra.cli`), and the light modules stay light (no torch or Lightning behind `lra --help`)."""

from __future__ import annotations

import ast
import graphlib
import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "lra"
# "module:function" targets of command tables (lra.dispatch.Command): imports made when the command runs.
TARGET = re.compile(r"^(lra(?:\.\w+)*):\w+$")


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, not `.__init__`)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_names(path: Path, package: str) -> set[str]:
    """Dotted names `path` imports anywhere (top level, inside functions), relative imports resolved, plus
    importlib.import_module("lra...") and "lra.x:function" command targets."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module",
            "__import__",
        ):
            names.update(arg.value for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and TARGET.match(node.value):
            names.add(TARGET.match(node.value).group(1))
    return names


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of `lra` it imports (a name resolves to the longest module it names)."""
    modules = module_files()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets = {resolve(name) for name in imported_names(path, package) if name.split(".")[0] == "lra"}
        graph[module] = targets - {None, module}
    return graph


def test_the_graph_sees_lazy_imports_and_command_targets() -> None:
    """The graph is built from what the files say: a top-level import, an import inside a function, a table target."""
    graph = import_graph()
    assert "lra.training.run" in graph["lra.suite.command"]  # top level
    assert "lra.suite.config" in graph["lra.sweep.config"]  # inside load_sweep_config
    assert {"lra.suite.command", "lra.sweep.command", "lra.bench", "lra.data.commands"} <= graph["lra.cli"]  # targets
    assert "lra.training.lightning_cli" in graph["lra.cli"]


def test_the_import_graph_has_no_cycle() -> None:
    sorter = graphlib.TopologicalSorter(import_graph())
    try:
        sorter.prepare()
    except graphlib.CycleError as error:
        cycle = " -> ".join(reversed(error.args[1]))  # graphlib lists each module before the one importing it
        raise AssertionError(f"import cycle (each imports the next): {cycle}") from None


def test_nothing_imports_the_entry_points() -> None:
    """`lra.cli` is the top of the house; only `python -m lra` (lra.__main__, which nothing imports) starts from it."""
    importers = sorted(module for module, targets in import_graph().items() if "lra.cli" in targets)
    assert importers == ["lra.__main__"]
    assert not [module for module, targets in import_graph().items() if "lra.__main__" in targets]


def test_every_module_imports_in_a_fresh_interpreter() -> None:
    """Each module of `lra` imports (lra.__main__ runs the command instead: see test_cli's `python -m lra --help`)."""
    modules = [module for module in module_files() if module != "lra.__main__"]
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\nprint('ok')"
    result = subprocess.run(
        [sys.executable, "-c", script, *modules], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip() == "ok"


def test_entry_points_and_config_readers_do_not_load_torch_or_lightning() -> None:
    """`lra --help` and reading a sweep file load neither (commands import their modules only when they run)."""
    script = (
        "import json, sys\n"
        "import lra.cli, lra.sweep.config, lra.suite, lra.training, lra.overrides, lra.files, lra.logs\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules} & {'torch', 'lightning'})))"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    assert json.loads(result.stdout) == []


def test_no_test_module_imports_another() -> None:
    """Shared test code lives in tests/helpers/ and conftest.py fixtures, never in a test module another imports."""
    tests = REPO / "tests"
    test_modules = {path.stem for path in tests.rglob("test_*.py")}
    offenders = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in sorted(tests.rglob("*.py"))
        for name in imported_names(path, "tests")
        if name.split(".")[0] in test_modules
    ]
    assert offenders == []
