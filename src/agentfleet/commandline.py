"""What every `agentfleet` command shares: its consoles, how it reports an error, and the
options that say which repository and store it works on.

Its own module so that command groups (`agentfleet agents`) and the main app use the same
ones without importing each other.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    from .local.workspace import Workspace

# Piped or in CI, rich would squeeze tables into 80 columns; a log line may be long instead.
# Ticket text and agent output are data: no console here reads rich markup in what it prints.
console = Console(width=None if sys.stdout.isatty() else 200, markup=False, highlight=False)
err_console = Console(stderr=True, soft_wrap=True, highlight=False, markup=False)

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

RepoOption = Annotated[
    Path | None,
    typer.Option(
        "--repo", help="The git repository (default: the one holding the current folder)."
    ),
]
StateDirOption = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Where the store lives (default: <repo>/.agentfleet)."),
]


def print_error(message: object) -> None:
    err_console.print(Text.assemble(("error", "red"), f": {message}"))


def print_warning(message: object) -> None:
    err_console.print(Text.assemble(("warning", "yellow"), f": {message}"))


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    """Print the error; the caller raises what this returns, so the exit shows in its code."""
    print_error(message)
    return typer.Exit(code)


def workspace(repo: Path | None, state_dir: Path | None) -> Workspace:
    """The repository and store of `--repo` / `--state-dir`, or exit 2 saying why not."""
    from .local.repository import RepositoryError
    from .local.workspace import resolve_workspace

    try:
        return resolve_workspace(repo, state_dir)
    except RepositoryError as exc:
        raise fail(f"--repo: {exc}", EXIT_BAD_INPUT) from exc
