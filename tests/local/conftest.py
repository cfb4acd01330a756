"""Whole batches through `agentfleet run`: a real repository, real processes, manifests in tmp."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

API = "agentfleet.dev/v1alpha1"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Setup", "-c", "user.email=setup@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def agent(
    name: str,
    agent_type: str,
    code: str,
    *,
    max_parallel: int | None = None,
    memory_mb: int | None = None,
    cpu_cores: float | None = None,
    timeout_seconds: int | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A `command` agent running `python -c CODE` in the task's worktree."""
    spec: dict[str, Any] = {
        "agentType": agent_type,
        "baseExecutor": {"type": "command", "command": ["python", "-c", code], "env": env or {}},
    }
    if max_parallel is not None:
        spec["maxParallelTasks"] = max_parallel
    limits: dict[str, Any] = {}
    if memory_mb is not None:
        limits["memoryMb"] = memory_mb
    if cpu_cores is not None:
        limits["cpuCores"] = cpu_cores
    if limits:
        spec["environmentRequirements"] = {"resourceLimits": limits}
    if timeout_seconds is not None:
        spec["timeoutSeconds"] = timeout_seconds
    return {"apiVersion": API, "kind": "AgentConfig", "metadata": {"name": name}, "spec": spec}


def project(name: str = "demo", base: str = "main", workflow: str = "flow") -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Project",
        "metadata": {"name": name},
        "spec": {
            "repository": {"url": ".", "baseBranch": base},
            "defaultWorkflowRef": {"name": workflow},
        },
    }


def workflow(
    stages: list[dict[str, Any]],
    *,
    name: str = "flow",
    strategy: str = "ContinueOthers",
    max_retries: int | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"stages": stages, "failureStrategy": strategy}
    if max_retries is not None:
        spec["maxRetries"] = max_retries
    return {"apiVersion": API, "kind": "Workflow", "metadata": {"name": name}, "spec": spec}


def batch(
    tickets: list[dict[str, Any]],
    *,
    name: str = "b",
    project_name: str = "demo",
    parallel_limit: int = 3,
    strategy: str = "DependencyAware",
    assignments: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "projectRef": {"name": project_name},
        "strategy": strategy,
        "parallelLimit": parallel_limit,
        "tickets": tickets,
    }
    if assignments:
        spec["agentAssignments"] = assignments
    return {"apiVersion": API, "kind": "TicketBatch", "metadata": {"name": name}, "spec": spec}


WRITE_FILE = (
    "import os, pathlib; "
    "pathlib.Path(os.environ['AGENTFLEET_STAGE'] + '.txt').write_text("
    "os.environ['AGENTFLEET_TASK'] + '\\n')"
)
"""An agent that writes `<stage>.txt` in its worktree: a change to commit."""


@dataclass
class Fleet:
    """One repository, its store, and the `agentfleet` CLI run as a real subprocess."""

    repo: Path
    tmp: Path

    @property
    def state_dir(self) -> Path:
        return self.repo / ".agentfleet"

    def write(self, docs: list[dict[str, Any]], name: str = "manifests.yaml") -> Path:
        path = self.tmp / "manifests" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        return path

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "agentfleet", *args]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("AGENTFLEET_STATE_DIR", None)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args, "--repo", str(self.repo)),
            cwd=self.tmp,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        """`agentfleet ARGS` in the background, e.g. a `run` a test approves or kills."""
        return subprocess.Popen(
            self.command(*args, "--repo", str(self.repo)),
            cwd=self.tmp,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def run(self, *files: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        args = [a for f in files for a in ("-f", str(f))]
        return self.cli("run", *args, timeout=timeout)

    def get(self, kind: str, name: str | None = None) -> Any:
        args = ["get", kind] + ([name] if name else []) + ["-o", "json"]
        out = self.cli(*args)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def tasks(self) -> dict[str, Any]:
        return {t["metadata"]["name"]: t for t in self.get("tasks")["items"]}

    def runs(self) -> list[dict[str, Any]]:
        """Run records straight from the store: names, phases, reasons, timestamps."""
        import sqlite3

        db = sqlite3.connect(self.state_dir / "state.db")
        db.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in db.execute("SELECT * FROM runs ORDER BY created")]
        finally:
            db.close()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("demo\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "initial")
    yield Fleet(repo=repo, tmp=tmp_path)
    kill_leftovers(repo)


def kill_leftovers(repo: Path) -> None:
    """Nothing a test started may outlive it: end every process naming the repo's store."""
    marker = str(repo / ".agentfleet")
    for proc in psutil.process_iter(["cmdline"]):
        if any(marker in part for part in proc.info["cmdline"] or ()):
            with contextlib.suppress(psutil.Error):
                proc.kill()
