"""Bad input exits 2 naming file, field and reason, and changes nothing: store nor repository."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .conftest import API, WRITE_FILE, Fleet, agent, batch, git, project, workflow

STAGES = [{"name": "develop", "agentType": "Development"}]


def valid_docs() -> list[dict[str, Any]]:
    return [
        project(),
        workflow(STAGES),
        agent("dev", "Development", WRITE_FILE),
        batch([{"id": "a", "rawDescription": "Add a"}]),
    ]


@dataclass(frozen=True)
class Case:
    """Manifests (or a repository) that must be refused, and what the message must name."""

    write: Callable[[Fleet], Path]
    expected: list[str]
    names_file: bool = True
    repo: Callable[[Fleet], Path] | None = None


def malformed_yaml(fleet: Fleet) -> Path:
    path = fleet.tmp / "manifests" / "broken.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("apiVersion: agentfleet.dev/v1alpha1\nkind: Project\nmetadata: name: demo\n")
    return path


def unknown_kind(fleet: Fleet) -> Path:
    gadget = {"apiVersion": API, "kind": "Gadget", "metadata": {"name": "g"}, "spec": {}}
    return fleet.write([*valid_docs(), gadget], "kind.yaml")


def unknown_field(fleet: Fleet) -> Path:
    flow = workflow(STAGES)
    flow["spec"]["colour"] = "blue"
    docs = valid_docs()
    docs[1] = flow
    return fleet.write(docs, "field.yaml")


def missing_project(fleet: Fleet) -> Path:
    docs = valid_docs()
    docs[3] = batch([{"id": "a", "rawDescription": "Add a"}], project_name="nope")
    return fleet.write(docs, "ref.yaml")


def ticket_cycle(fleet: Fleet) -> Path:
    docs = valid_docs()
    docs[3] = batch(
        [
            {"id": "a", "rawDescription": "Add a", "dependencies": ["b"]},
            {"id": "b", "rawDescription": "Add b", "dependencies": ["a"]},
        ]
    )
    return fleet.write(docs, "cycle.yaml")


def missing_base_branch(fleet: Fleet) -> Path:
    docs = valid_docs()
    docs[0] = project(base="develop")
    return fleet.write(docs, "base.yaml")


def valid(fleet: Fleet) -> Path:
    return fleet.write(valid_docs(), "valid.yaml")


def not_a_repository(fleet: Fleet) -> Path:
    folder = fleet.tmp / "plain"
    folder.mkdir(exist_ok=True)
    return folder


CASES = {
    "malformed-yaml": Case(
        malformed_yaml, ["invalid YAML", "line 3", "mapping values are not allowed"]
    ),
    "unknown-kind": Case(unknown_kind, ["(document 5)", "kind", "unknown kind 'Gadget'"]),
    "unknown-field": Case(unknown_field, ["(document 2)", "spec.colour", "unknown field"]),
    "missing-project": Case(missing_project, ["spec.projectRef.name", "Project 'nope' not found"]),
    "dependency-cycle": Case(ticket_cycle, ["spec.tickets", "dependency cycle", "a -> b -> a"]),
    "not-a-git-repository": Case(
        valid, ["--repo", "not a git repository"], names_file=False, repo=not_a_repository
    ),
    "missing-base-branch": Case(
        missing_base_branch, ["spec.repository.baseBranch", "'develop' does not exist"]
    ),
}


def invoke(fleet: Fleet, command: str, files: Path, repo: Path) -> subprocess.CompletedProcess[str]:
    """`agentfleet COMMAND -f FILES --repo REPO`, with a repository the fixture may not own."""
    return subprocess.run(
        fleet.command(command, "-f", str(files), "--repo", str(repo)),
        cwd=fleet.tmp,
        env=fleet.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def exclude_file(repo: Path) -> str:
    path = repo / ".git" / "info" / "exclude"
    return path.read_text() if path.exists() else "<missing>"


def repository_state(repo: Path) -> dict[str, str]:
    return {
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
        "head": git(repo, "rev-parse", "HEAD"),
        "refs": git(repo, "for-each-ref"),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
        "exclude": exclude_file(repo),
    }


def store_content(state_dir: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables that hold what a store knows, in a stable order."""
    db = sqlite3.connect(state_dir / "state.db")
    try:
        return {
            table: sorted(tuple(row) for row in db.execute(f"SELECT * FROM {table}"))
            for table in ("resources", "runs", "events")
        }
    finally:
        db.close()


def assert_refused(result: subprocess.CompletedProcess[str], case: Case, files: Path) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr
    assert "error" in message, message
    if case.names_file:
        assert str(files) in message, message
    for part in case.expected:
        assert part in message, f"{part!r} not in {message!r}"


@pytest.mark.parametrize("command", ["run", "apply"])
@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_and_creates_no_store(fleet: Fleet, name: str, command: str) -> None:
    case = CASES[name]
    files = case.write(fleet)
    repo = case.repo(fleet) if case.repo else fleet.repo
    before = repository_state(fleet.repo)

    result = invoke(fleet, command, files, repo)

    assert_refused(result, case, files)
    assert not (fleet.repo / ".agentfleet").exists()
    assert not (repo / ".agentfleet").exists()
    assert not (fleet.tmp / ".agentfleet").exists()
    assert repository_state(fleet.repo) == before


@pytest.mark.parametrize("command", ["run", "apply"])
@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_and_leaves_an_existing_store_as_it_was(
    fleet: Fleet, name: str, command: str
) -> None:
    applied = fleet.cli("apply", "-f", str(valid(fleet)))
    assert applied.returncode == 0, applied.stderr
    case = CASES[name]
    files = case.write(fleet)
    repo = case.repo(fleet) if case.repo else fleet.repo
    store_before = store_content(fleet.state_dir)
    repo_before = repository_state(fleet.repo)
    assert store_before["resources"], "the valid apply stored nothing"

    result = invoke(fleet, command, files, repo)

    assert_refused(result, case, files)
    assert store_content(fleet.state_dir) == store_before
    assert repository_state(fleet.repo) == repo_before
    assert not (repo / ".agentfleet").exists() or repo == fleet.repo
