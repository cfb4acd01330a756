"""The real `gemini` CLI (0.61.0) through the real runner, against the scripted Gemini API.

Only the model's turns are scripted (tests/support/model_servers/gemini.py): the CLI, its
tools, the runner's criteria and commit are all real. Each run costs a node start of about
2.5 s, so there are few of them and each is short.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

from agentfleet.models.agent import AgentConfigSpec, BaseExecutor, ExecutorType, Pricing
from agentfleet.models.meta import AgentType
from agentfleet.models.run import RunResult, TokenUsage
from agentfleet.runner.spec import McpServer, RunSpec
from tests.support.agent_clis import node_available, require_cli
from tests.support.model_servers import ECHO_MCP
from tests.support.model_servers.gemini import (
    FunctionCall,
    ScriptedServer,
    call,
    http_error,
    reply,
    serve,
    text,
)

from .conftest import PYTEST, Ran, Repo, git, run

MODEL = "gemini-2.5-flash"
TEST_HELLO = 'def test_hello():\n    assert open("hello.txt").read() == "hello\\n"\n'


@pytest.fixture
def gemini() -> str:
    binary = require_cli("gemini")
    if not node_available():
        message = "the gemini CLI is a node bundle and node is not on PATH"
        if os.environ.get("AGENTFLEET_REQUIRE_AGENT_CLIS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return str(binary)


def gemini_spec(
    repo: Repo,
    server: ScriptedServer,
    cli: str,
    *,
    criteria: list[dict[str, Any]] | None = None,
    executor: dict[str, Any] | None = None,
    **agent: Any,
) -> RunSpec:
    """conftest's stage run, driven by the real gemini against `server`."""
    base = BaseExecutor(
        type=ExecutorType.GEMINI,
        command=[cli],
        model=MODEL,
        # No __pycache__ from the agent's pytest in the commit; the CLI's error reports
        # (`gemini-client-error-*.json`, whole conversations) go to TMPDIR, not /tmp.
        env={**server.env(), "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": str(repo.tmp)},
        **(executor or {}),
    )
    spec = repo.spec([cli], criteria=criteria, timeout_seconds=120)
    agent_spec = AgentConfigSpec(
        agent_type=AgentType.DEVELOPMENT,
        base_executor=base,
        specialized_instructions="Write small, tested changes.",
        **agent,
    )
    return spec.model_copy(update={"agent": agent_spec})


def result_event(ran: Ran) -> dict[str, Any]:
    (event,) = ran.events_of("result")
    return event


def test_gemini_writes_a_file_runs_the_tests_and_the_run_succeeds_with_priced_tokens(
    repo: Repo, gemini: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The agent's pytest and the criterion's skip this venv's plugins: seconds each.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    turns = [
        reply(
            "I will add the greeting and a test for it.",
            FunctionCall("write_file", {"file_path": "hello.txt", "content": "hello\n"}),
            FunctionCall("write_file", {"file_path": "test_hello.py", "content": TEST_HELLO}),
        ),
        call("run_shell_command", command=PYTEST, description="Run the tests"),
        text("Added hello.txt and a passing test."),
    ]
    criteria = [
        {"type": "file_created", "pattern": "hello.txt"},
        {"type": "tests_pass", "command": PYTEST},
    ]
    with serve(turns) as server:
        spec = gemini_spec(
            repo,
            server,
            gemini,
            criteria=criteria,
            executor={"pricing": Pricing(input=1.25, output=10.0)},
            tools_enabled=[f"run_shell_command({PYTEST})"],
        )
        ran = run(repo, spec)

    result = RunResult.model_validate(ran.result)
    assert (result.outcome, result.reason) == ("Succeeded", "Succeeded"), result.message
    assert [(c.type, c.passed) for c in result.criteria] == [
        ("file_created", True),
        ("tests_pass", True),
    ]
    assert not server.exhausted
    shell = server.main_requests[2].function_responses()[-1]
    assert shell["name"] == "run_shell_command"
    assert "1 passed" in shell["response"]["output"]  # the agent's own pytest run
    # Three model turns of 1000 prompt and 20 output tokens each, priced per million.
    assert result.tokens == TokenUsage(input=3000, output=60)
    assert result.cost_usd == pytest.approx((3000 * 1.25 + 60 * 10.0) / 1_000_000)
    assert result_event(ran)["text"] == "Added hello.txt and a passing test."
    assert [e["tool"] for e in ran.events_of("tool_call")] == [
        "write_file",
        "write_file",
        "run_shell_command",
    ]
    assert result.commit == repo.head()
    committed = git(repo.worktree, "show", "--name-only", "--format=", "HEAD").split()
    assert {"hello.txt", "test_hello.py"} <= set(committed)
    message = git(repo.worktree, "log", "-1", "--format=%B")
    assert "Ticket: T-1\nStage: dev\nRun: t1-dev-1\nAgent: scripted" in message
    first = server.main_requests[0]
    assert "# Task: Add a greeting" in first.user_text()  # the prompt came through stdin
    assert "Write small, tested changes." in first.system_text()  # GEMINI.md appended


def test_gemini_stops_at_max_turns_and_the_run_fails_naming_the_limit(
    repo: Repo, gemini: str
) -> None:
    turns = [call("list_directory", dir_path=".") for _ in range(3)] + [text("never")]
    with serve(turns) as server:
        ran = run(repo, gemini_spec(repo, server, gemini, executor={"max_turns": 2}))

    result = RunResult.model_validate(ran.result)
    assert (result.outcome, result.reason) == ("Failed", "AgentFailed")
    assert result.exit_code == 53
    assert len(server.main_requests) == 2
    event = result_event(ran)
    assert event["text"].startswith("reached max turns (2)")
    assert event["data"]["error"]["type"] == "FatalTurnLimitedError"


def test_restricted_tools_are_not_offered_to_the_model_and_enabled_ones_are(
    repo: Repo, gemini: str
) -> None:
    with serve([text("Nothing to change.")]) as server:
        spec = gemini_spec(
            repo,
            server,
            gemini,
            tool_restrictions=["write_file", "google_web_search"],
            tools_enabled=["run_shell_command"],
        )
        ran = run(repo, spec)

    assert ran.result["reason"] == "Succeeded", ran.result["message"]
    offered = server.main_requests[0].function_names()
    assert "read_file" in offered
    assert "replace" in offered  # auto_edit's edit tools are still there
    assert "run_shell_command" in offered  # headless auto_edit offers no shell unless enabled
    assert "write_file" not in offered
    assert "google_web_search" not in offered


def test_a_rejected_api_key_fails_the_run_fast_without_retries(repo: Repo, gemini: str) -> None:
    with serve([http_error(401)]) as server:
        ran = run(repo, gemini_spec(repo, server, gemini))

    result = RunResult.model_validate(ran.result)
    assert (result.outcome, result.reason) == ("Failed", "AgentFailed")
    assert result.exit_code == 145  # the CLI exits with the HTTP status mod 256
    assert result.duration_seconds is not None
    assert result.duration_seconds < 30
    assert len(server.main_requests) == 1
    assert "API key not valid" in result_event(ran)["text"]


def test_the_agentfleet_mcp_server_is_offered_and_its_tools_run_without_asking(
    repo: Repo, gemini: str
) -> None:
    turns = [call("mcp_agentfleet_echo", text="ping"), text("Echoed.")]
    with serve(turns) as server:
        spec = gemini_spec(repo, server, gemini).model_copy(
            update={"mcp": McpServer(command=[sys.executable, str(ECHO_MCP)], token="t0k")}
        )
        ran = run(repo, spec)

    assert ran.result["reason"] == "Succeeded", ran.result["message"]
    assert "mcp_agentfleet_echo" in server.main_requests[0].function_names()
    (tool_result,) = ran.events_of("tool_result")
    assert (tool_result["tool"], tool_result["text"]) == ("mcp_agentfleet_echo", "echo: ping")
