"""A real git repository with a task worktree, and a way to run the runner against it."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentfleet.models.agent import AgentConfigSpec, BaseExecutor, ExecutorType
from agentfleet.models.meta import AgentType
from agentfleet.models.task import AgentTaskSpec
from agentfleet.models.workflow import Stage
from agentfleet.runner.main import main
from agentfleet.runner.spec import RunSpec

BRANCH = "agentfleet/b1/t1"
PYTEST = f"{sys.executable} -m pytest -q -p no:cacheprovider"
"""The test command agents run and criteria check: this interpreter, no cache in the commit."""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Setup", "-c", "user.email=setup@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@dataclass(frozen=True)
class Repo:
    root: Path
    worktree: Path
    context_dir: Path
    tmp: Path

    def head(self) -> str:
        return git(self.worktree, "rev-parse", "HEAD").strip()

    def spec(
        self,
        agent: list[str],
        *,
        criteria: list[dict[str, Any]] | None = None,
        title: str = "Add a greeting",
        **fields: Any,
    ) -> RunSpec:
        """A stage run of a command agent on the task branch."""
        values: dict[str, Any] = {
            "name": "t1-dev-1",
            "batch": "b1",
            "task": "t1",
            "stage": "dev",
            "attempt": 1,
            "agent_name": "scripted",
            "agent": AgentConfigSpec(
                agent_type=AgentType.DEVELOPMENT,
                base_executor=BaseExecutor(type=ExecutorType.COMMAND, command=agent),
                specialized_instructions="Write small, tested changes.",
            ),
            "task_spec": AgentTaskSpec(
                title=title,
                ticket_id="T-1",
                description="Greet the user.",
                acceptance_criteria=["hello.txt says hello", "nothing else changes"],
            ),
            "stage_spec": Stage.model_validate(
                {
                    "name": "dev",
                    "agentType": "Development",
                    "action": "implement",
                    "instructions": "Write hello.txt.",
                    "successCriteria": criteria or [],
                }
            ),
            "worktree": str(self.worktree),
            "context_dir": str(self.context_dir),
            "branch": BRANCH,
        }
        values.update(fields)
        return RunSpec(**values)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    """`main` with one commit, and a worktree on the task branch beside it."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "README.md").write_text("# demo\n")
    (root / ".gitignore").write_text("*.log\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    worktree = tmp_path / "worktrees" / "t1"
    git(root, "worktree", "add", "-q", "-b", BRANCH, str(worktree), "main")
    return Repo(
        root=root, worktree=worktree, context_dir=tmp_path / "context" / "t1-dev-1", tmp=tmp_path
    )


@dataclass(frozen=True)
class Ran:
    exit_code: int
    result: dict[str, Any]
    events: list[dict[str, Any]]

    def events_of(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_]


def run_spec_text(tmp: Path, spec_text: str) -> Ran:
    """Run the runner in this process (fast); its agents and git are real subprocesses."""
    spec_path = tmp / "run.json"
    result_path = tmp / "out" / "result.json"
    spec_path.write_text(spec_text)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--spec", str(spec_path), "--result", str(result_path)])
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    return Ran(code, json.loads(result_path.read_text()), events)


def run(repo: Repo, spec: RunSpec) -> Ran:
    return run_spec_text(repo.tmp, spec.model_dump_json(by_alias=True))


def python_agent(code: str) -> list[str]:
    """An agent that is a Python snippet: no shell, so quoting cannot go wrong."""
    return [sys.executable, "-c", code]
