"""`agentfleet agents command` prints what a run would execute, and the real CLIs accept it:
each printed argv, with its printed environment and the prompt on stdin, is run here against
the scripted model server of its provider and must end in a successful final result."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentfleet.executors import executor_for
from agentfleet.models.agent import ExecutorType
from tests.support.agent_clis import require_cli
from tests.support.model_servers import anthropic, gemini, openai_responses

from .conftest import Fleet

API = "agentfleet.dev/v1alpha1"
GREETING = "Hello from the scripted model."


def agent_doc(name: str, executor: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "AgentConfig",
        "metadata": {"name": name},
        "spec": {
            "agentType": "Development",
            "baseExecutor": executor,
            "specializedInstructions": "Answer briefly.",
            **spec,
        },
    }


@contextmanager
def provider(executor: str) -> Iterator[tuple[dict[str, Any], dict[str, str], Any]]:
    """The AgentConfig's baseExecutor, the environment with credentials, and the server."""
    binary = str(require_cli(executor))
    if executor == "claude-code":
        with anthropic.serve([anthropic.text(GREETING)]) as server:
            yield {"type": executor, "command": [binary], "maxRetries": 0}, server.env(), server
    elif executor == "gemini":
        with gemini.serve([gemini.text(GREETING)]) as server:
            yield {"type": executor, "command": [binary], "maxRetries": 0}, server.env(), server
    else:
        with openai_responses.serve([openai_responses.text(GREETING)]) as server:
            base = {
                "type": executor,
                "command": [binary],
                "model": "gpt-5.5",
                "args": openai_responses.codex_provider_args(server),
            }
            yield base, openai_responses.codex_provider_env(), server


def final_ok(executor: str, stdout: str) -> bool:
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    if executor == "claude-code":
        results = [e for e in events if e.get("type") == "result"]
        return bool(results) and results[-1]["is_error"] is False
    if executor == "gemini":
        results = [e for e in events if e.get("type") == "result"]
        return bool(results) and results[-1]["status"] == "success"
    return any(e.get("type") == "turn.completed" for e in events)


@pytest.mark.parametrize("executor", ["claude-code", "gemini", "codex"])
def test_the_printed_command_is_one_the_real_cli_accepts(
    fleet: Fleet, executor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with provider(executor) as (base, credentials, _server):
        manifest = fleet.write([agent_doc("probe", base)])
        applied = fleet.cli("apply", "-f", str(manifest))
        assert applied.returncode == 0, applied.stderr
        for key, value in credentials.items():
            monkeypatch.setenv(key, value)
        shown = fleet.cli("agents", "command", "probe", "-o", "json", "--write-files")
        assert shown.returncode == 0, shown.stderr
        preview = json.loads(shown.stdout)
        text = fleet.cli("agents", "command", "probe")
        assert shlex.join(preview["argv"]) in text.stdout

        assert preview["executor"] == executor
        assert "***" not in preview["env"].values(), "agentfleet itself sets no secret"
        env = {**os.environ, **credentials, **preview["env"]}
        prompt = Path(preview["stdin"]).read_text(encoding="utf-8")
        done = subprocess.run(
            preview["argv"],
            cwd=preview["cwd"],
            env=env,
            input=prompt,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert final_ok(executor, done.stdout), done.stdout[-2000:]
    parser = executor_for(ExecutorType(executor))
    for line in done.stdout.splitlines():
        parser.parse_line(line)
    outcome = parser.finish(done.returncode)
    assert outcome.ok, outcome.message
    assert outcome.text.strip() == GREETING


def test_credentials_in_the_environment_are_named_but_never_shown(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"MY_SERVICE_TOKEN": "t0ps3cret", "DATABASE_URL": "postgres://app:hunter2@db/x"}
    doc = agent_doc("claude", {"type": "claude-code", "env": env})
    fleet.write([doc])
    assert fleet.cli("apply", "-f", str(fleet.tmp / "manifests" / "manifests.yaml")).returncode == 0
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-very-secret")
    monkeypatch.setenv("HTTPS_PROXY", "http://bob:pr0xypass@proxy:3128")

    shown = fleet.cli("agents", "command", "claude", "-o", "json")
    text = fleet.cli("agents", "command", "claude")

    preview = json.loads(shown.stdout)
    assert preview["inheritedEnv"] == {"ANTHROPIC_API_KEY": "***", "HTTPS_PROXY": "***"}
    assert preview["env"]["MY_SERVICE_TOKEN"] == "***"
    assert preview["env"]["DATABASE_URL"] == "postgres://***@db/x"
    for output in (shown.stdout, text.stdout):
        for secret in ("sk-ant-very-secret", "t0ps3cret", "hunter2", "pr0xypass"):
            assert secret not in output
    assert "ANTHROPIC_API_KEY=***" in text.stdout


def test_a_task_and_stage_give_the_run_name_worktree_and_stage_instructions(
    fleet: Fleet,
) -> None:
    docs = [
        {
            "apiVersion": API,
            "kind": "Project",
            "metadata": {"name": "demo"},
            "spec": {"repository": {"url": "."}, "defaultWorkflowRef": {"name": "flow"}},
        },
        {
            "apiVersion": API,
            "kind": "Workflow",
            "metadata": {"name": "flow"},
            "spec": {
                "stages": [
                    {"name": "build", "agentType": "Development", "instructions": "Build it."},
                    {"name": "check", "agentType": "Development", "instructions": "Check it."},
                ]
            },
        },
        agent_doc("dev", {"type": "claude-code"}),
        {
            "apiVersion": API,
            "kind": "TicketBatch",
            "metadata": {"name": "b"},
            "spec": {
                "projectRef": {"name": "demo"},
                "tickets": [{"id": "t1", "rawDescription": "do it"}],
                "execute": False,
            },
        },
    ]
    path = fleet.tmp / "m.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    assert fleet.cli("run", "-f", str(path)).returncode == 0

    shown = json.loads(
        fleet.cli(
            "agents", "command", "dev", "--task", "b-t1", "--stage", "check", "-o", "json"
        ).stdout
    )
    missing = fleet.cli("agents", "command", "dev", "--task", "b-t1", "--stage", "nope")

    assert shown["run"] == "b-t1-check-1"
    assert shown["cwd"] == str(fleet.state_dir.resolve() / "worktrees" / "b-t1")
    system = shown["argv"][shown["argv"].index("--append-system-prompt") + 1]
    assert "Check it." in system
    assert missing.returncode == 1
    assert "no stage 'nope' (stages: build, check)" in missing.stderr


def test_an_unknown_agent_is_an_error_naming_the_known_ones(fleet: Fleet) -> None:
    fleet.write([agent_doc("dev", {"type": "claude-code"})])
    fleet.cli("apply", "-f", str(fleet.tmp / "manifests" / "manifests.yaml"))

    out = fleet.cli("agents", "command", "ghost")

    assert out.returncode == 1
    assert "AgentConfig 'ghost' not found; known agents: dev" in out.stderr
    assert sys.executable
