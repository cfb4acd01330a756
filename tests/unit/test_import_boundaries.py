"""The core stays pure: no cluster, web, process, file or clock access, checked on its source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import agentfleet.core

CORE = Path(agentfleet.core.__file__).parent
FORBIDDEN = {
    "kopf",
    "kubernetes",
    "fastapi",
    "uvicorn",
    "subprocess",
    "git",
    "sqlite3",
    "socket",
    "os",
    "pathlib",
    "shutil",
    "time",
    "asyncio",
    "threading",
    "multiprocessing",
    "random",
    "requests",
    "httpx",
}
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter"}


def _core_modules() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def _imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", _core_modules(), ids=lambda p: p.name)
def test_core_module_imports_no_io_library(module: Path) -> None:
    imported = _imports(ast.parse(module.read_text()))
    assert not imported & FORBIDDEN, f"{module.name} imports {sorted(imported & FORBIDDEN)}"


@pytest.mark.parametrize("module", _core_modules(), ids=lambda p: p.name)
def test_core_module_never_reads_a_clock(module: Path) -> None:
    calls = [
        node.func.attr
        for node in ast.walk(ast.parse(module.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in CLOCK_CALLS
    ]
    assert not calls, f"{module.name} reads the clock via {calls}: take the time from the snapshot"


def test_core_imports_only_models_the_registry_and_itself_from_agentfleet() -> None:
    for module in _core_modules():
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                module_name = node.module or ""
                assert module_name.split(".")[0] == "models" or module_name == "agents.registry", (
                    f"{module.name} imports agentfleet.{module_name}"
                )


def test_import_linter_contracts_are_kept() -> None:
    root = Path(__file__).resolve().parents[2]
    tool = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(tool) if tool.exists() else "lint-imports"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
