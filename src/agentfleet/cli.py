"""The `agentfleet` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .models.loader import ManifestError

app = typer.Typer(
    name="agentfleet",
    help="Run fleets of AI coding agents: locally in git worktrees, or as a Kubernetes operator.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True, highlight=False)

EXIT_BAD_INPUT = 2


@app.command()
def crds(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder to write the CRD manifests to.")
    ] = Path("crds"),
) -> None:
    """Write the CustomResourceDefinitions, generated from the models, to OUTPUT."""
    from .crd import write_crds

    for path in write_crds(output):
        console.print(f"wrote {path}")


@app.command()
def simulate(
    files: Annotated[
        list[Path], typer.Option("--file", "-f", help="Manifest file or folder (repeatable).")
    ],
    seed: Annotated[int, typer.Option(help="Seed of the random run durations.")] = 0,
) -> None:
    """Schedule the batches in FILES in virtual time with the real engine; no agent runs.

    Exit 0 when every batch succeeds, 1 when one does not, 2 on bad input.
    """
    from .simulate import render_simulation, simulate_manifests

    try:
        reports = simulate_manifests(files, seed=seed)
    except ManifestError as exc:
        for issue in exc.issues:
            err_console.print(f"[red]error[/red]: {issue}")
        raise typer.Exit(EXIT_BAD_INPUT) from exc
    render_simulation(console, reports)
    if any(r.phase != "Succeeded" for r in reports):
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
