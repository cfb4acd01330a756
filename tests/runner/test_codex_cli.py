"""The real `codex` binary through the real runner, against the scripted Responses API.

Everything but the model is real: the CLI (pinned, installed by dev.py), its sandbox and
tools, the runner's subprocess handling, git. The agent is configured as a user would point
Codex at their own endpoint: a custom model provider in `baseExecutor.args`
(`-c model_provider=... -c model_providers.<id>.base_url=...`) and its key in
`baseExecutor.env`. The model is `gpt-5.5`: in Codex's catalog, with plain function tools
(the catalog's default model gets a JavaScript `exec` tool instead). Each run takes one to a
few seconds; retries are bounded by `maxRetries`, so a failure cannot wait in backoff.
"""

from __future__ import annotations

import socket
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from agentfleet.executors.codex import CONFIG_FILE, LAST_MESSAGE_FILE
from agentfleet.models.agent import AgentConfigSpec, BaseExecutor, ExecutorType
from agentfleet.models.meta import AgentType
from agentfleet.runner.spec import McpServer, RunSpec
from tests.support.agent_clis import require_cli
from tests.support.model_servers import ECHO_MCP
from tests.support.model_servers.openai_responses import (
    PROVIDER,
    RECORDING_MODEL,
    ScriptedServer,
    Turn,
    Usage,
    codex_provider_args,
    codex_provider_env,
    custom_tool_call,
    function_call,
    http_error,
    namespaced_call,
    reasoning,
    reply,
    serve,
    text,
    tool_search_call,
)

from .conftest import BRANCH, PYTEST, Ran, Repo, git, run

ADD_TEST_FILE = (
    "*** Begin Patch\n*** Add File: test_hello.py\n"
    "+from pathlib import Path\n+\n+\n+def test_hello():\n"
    "+    assert Path('hello.txt').read_text() == 'hello\\n'\n*** End Patch\n"
)
PRICING = {"input": 2.0, "output": 8.0, "cacheRead": 0.5}


@pytest.fixture
def codex(monkeypatch: pytest.MonkeyPatch) -> Path:
    # The criteria's pytest runs in the runner's environment: no bytecode in the commit.
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    return require_cli("codex")


def codex_spec(
    repo: Repo,
    codex: Path,
    server: ScriptedServer | None,
    *,
    executor: dict[str, Any] | None = None,
    agent: dict[str, Any] | None = None,
    criteria: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> RunSpec:
    """The conftest's stage run, with a Codex agent whose provider is `server`."""
    base: dict[str, Any] = {
        "type": ExecutorType.CODEX,
        "command": [str(codex)],
        "model": RECORDING_MODEL,
        "env": {**codex_provider_env(), "PYTHONDONTWRITEBYTECODE": "1"},
        "args": codex_provider_args(server) if server else [],
        "max_retries": 0,
    }
    base.update(executor or {})
    agent_fields: dict[str, Any] = {
        "agent_type": AgentType.DEVELOPMENT,
        "base_executor": BaseExecutor(**base),
        "specialized_instructions": "Write small, tested changes.",
    }
    agent_fields.update(agent or {})
    spec = repo.spec(["unused"], criteria=criteria, **fields)
    return spec.model_copy(update={"agent": AgentConfigSpec(**agent_fields)})


def result_events(ran: Ran) -> list[dict[str, Any]]:
    return ran.events_of("result")


def test_the_agent_writes_code_runs_its_tests_and_the_run_succeeds_with_a_commit(
    repo: Repo, codex: Path
) -> None:
    cached = Usage(input_tokens=1000, cached_input_tokens=600, output_tokens=50)
    turns: list[Turn] = [
        reply(
            reasoning("Write the file, then a test."),
            function_call("exec_command", {"cmd": "printf 'hello\\n' > hello.txt"}),
            usage=cached,
        ),
        custom_tool_call("apply_patch", ADD_TEST_FILE),
        function_call("exec_command", {"cmd": PYTEST}),
        text("Tests pass."),
    ]
    criteria = [
        {"type": "file_created", "pattern": "hello.txt"},
        {"type": "tests_pass", "command": PYTEST},
    ]
    with serve(turns) as server:
        spec = codex_spec(repo, codex, server, executor={"pricing": PRICING}, criteria=criteria)
        ran = run(repo, spec)

    assert ran.exit_code == 0, ran.result["message"]
    assert ran.result["outcome"] == "Succeeded"
    assert [(c["type"], c["passed"]) for c in ran.result["criteria"]] == [
        ("file_created", True),
        ("tests_pass", True),
    ]
    assert len(server.model_requests) == 4
    assert [e["tool"] for e in ran.events_of("tool_call")] == ["shell", "apply_patch", "shell"]
    pytest_result = ran.events_of("tool_result")[-1]
    assert "1 passed" in pytest_result["text"]
    assert pytest_result["data"]["exitCode"] == 0
    assert [e["text"] for e in ran.events_of("text") if not e["data"]] == ["Tests pass."]

    assert ran.result["commit"] == repo.head()
    message = git(repo.worktree, "log", "-1", "--format=%B", BRANCH)
    for trailer in ("Ticket: T-1", "Stage: dev", "Run: t1-dev-1", "Agent: scripted"):
        assert trailer in message
    committed = git(repo.worktree, "show", "--name-only", "--format=", "HEAD").split()
    assert sorted(committed) == ["hello.txt", "test_hello.py"]

    # One request with 600 of 1000 input tokens cached, three with the default 100/20.
    assert ran.result["tokens"] == {
        "input": 400 + 300,
        "output": 50 + 60,
        "cacheRead": 600,
        "cacheCreation": 0,
    }
    assert ran.result["costUsd"] == pytest.approx((700 * 2.0 + 110 * 8.0 + 600 * 0.5) / 1e6)
    assert result_events(ran)[-1]["costUsd"] == ran.result["costUsd"]

    first = server.model_requests[0]
    assert "# Stage instructions (dev)\n\nWrite hello.txt." in "\n".join(first.developer_texts())
    assert first.body["model"] == RECORDING_MODEL
    assert (repo.context_dir / LAST_MESSAGE_FILE).read_text().strip() == "Tests pass."


def test_an_authentication_failure_fails_as_agent_failed_after_bounded_retries(
    repo: Repo, codex: Path
) -> None:
    with serve([http_error(401)]) as server:
        started = time.monotonic()
        ran = run(repo, codex_spec(repo, codex, server, executor={"max_retries": 2}))
        elapsed = time.monotonic() - started

    assert ran.exit_code == 1
    assert (ran.result["outcome"], ran.result["reason"]) == ("Failed", "AgentFailed")
    assert ran.result["exitCode"] == 1
    assert len(server.model_requests) == 3  # the first request and maxRetries 2
    assert [e["data"]["attempt"] for e in ran.events_of("retry")] == [1, 2]
    final = result_events(ran)[-1]
    assert final["data"]["isError"] is True
    assert final["text"].startswith("authentication failed: unexpected status 401")
    assert ran.result["message"].startswith(
        "the agent exited 1: authentication failed: unexpected status 401 Unauthorized"
    )
    assert elapsed < 30


def test_an_unreachable_endpoint_fails_in_bounded_time_instead_of_waiting_for_network(
    repo: Repo, codex: Path
) -> None:
    """Codex's `unbounded_connection_retries` would retry forever; config.toml turns it off."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    args = [
        "-c",
        f'model_provider="{PROVIDER}"',
        "-c",
        f'model_providers.{PROVIDER}.name="Nobody"',
        "-c",
        f'model_providers.{PROVIDER}.base_url="http://127.0.0.1:{port}/v1"',
        "-c",
        f'model_providers.{PROVIDER}.env_key="{next(iter(codex_provider_env()))}"',
    ]
    started = time.monotonic()
    ran = run(repo, codex_spec(repo, codex, None, executor={"args": args, "max_retries": 1}))
    elapsed = time.monotonic() - started

    assert ran.result["reason"] == "AgentFailed"
    assert [e["data"]["attempt"] for e in ran.events_of("retry")] == [1]
    assert "Connection failed" in result_events(ran)[-1]["text"]
    assert elapsed < 30


def test_restricted_tools_are_not_offered_to_the_model(repo: Repo, codex: Path) -> None:
    with serve([text("Nothing to do.")]) as server:
        spec = codex_spec(
            repo,
            codex,
            server,
            agent={"tool_restrictions": ["shell", "web_search", "view_image"]},
        )
        ran = run(repo, spec)

    assert ran.result["outcome"] == "Succeeded", ran.result["message"]
    offered = server.model_requests[0].tool_names()
    for gone in ("exec_command", "write_stdin", "web_search", "view_image"):
        assert gone not in offered
    assert "apply_patch" in offered  # Codex cannot take it away: read-only forbids edits


def test_tools_are_offered_when_nothing_is_restricted(repo: Repo, codex: Path) -> None:
    """The control for the test above: the same model is offered all of them by default."""
    with serve([text("Nothing to do.")]) as server:
        run(repo, codex_spec(repo, codex, server))

    offered = server.model_requests[0].tool_names()
    for tool in ("exec_command", "write_stdin", "web_search", "view_image", "apply_patch"):
        assert tool in offered


def test_a_restricted_command_prefix_is_rejected_before_it_runs(repo: Repo, codex: Path) -> None:
    command = "touch before.txt; git push origin HEAD; touch after.txt"
    turns = [function_call("exec_command", {"cmd": command}), text("I may not push.")]
    with serve(turns) as server:
        spec = codex_spec(repo, codex, server, agent={"tool_restrictions": ["shell(git push)"]})
        ran = run(repo, spec)

    assert ran.result["outcome"] == "Succeeded", ran.result["message"]
    [output] = server.model_requests[1].function_outputs()
    assert "rejected" in output
    assert "restricted by the agent's toolRestrictions" in output
    assert not (repo.worktree / "before.txt").exists()  # the whole command, not a part
    assert ran.events_of("tool_call") == []  # Codex reports no item for a rejected command


def test_the_agentfleet_mcp_server_is_started_with_its_token_and_callable_unprompted(
    repo: Repo, codex: Path, tmp_path: Path
) -> None:
    turns: list[Turn] = [
        reply(tool_search_call("echo")),
        reply(namespaced_call("mcp__agentfleet", "echo", {"text": "ping"})),
        text("It echoed."),
    ]
    mcp = McpServer(command=[sys.executable, str(ECHO_MCP)], token="tok-secret")
    with serve(turns) as server:
        ran = run(repo, codex_spec(repo, codex, server, mcp=mcp))

    assert ran.result["outcome"] == "Succeeded", ran.result["message"]
    [call] = ran.events_of("tool_call")
    [result] = ran.events_of("tool_result")
    assert call["tool"] == result["tool"] == "mcp:agentfleet/echo"
    assert result["text"] == "echo: ping"
    assert result["data"]["isError"] is False
    config = (repo.context_dir / CONFIG_FILE).read_text()
    assert "tok-secret" in config
    assert (repo.context_dir / CONFIG_FILE).stat().st_mode & 0o077 == 0


def test_the_config_agentfleet_writes_passes_codex_strict_config_check(
    repo: Repo, codex: Path
) -> None:
    """`--strict-config` makes Codex refuse keys it does not know: every key agentfleet
    writes (retries, telemetry, instructions, restrictions) exists in this version; the
    MCP keys are checked by the next test."""
    with serve([text("Configured.")]) as server:
        spec = codex_spec(
            repo,
            codex,
            server,
            executor={"args": [*codex_provider_args(server), "--strict-config"]},
            agent={
                "specialized_instructions": 'Quote "this", tab\there, DEL \x7f, emoji \U0001f600',
                "tool_restrictions": ["shell(git push)", "web_search", "goals", "multi_agent"],
            },
        )
        ran = run(repo, spec)

    assert ran.result["outcome"] == "Succeeded", ran.result["message"]
    config = tomllib.loads((repo.context_dir / CONFIG_FILE).read_text())
    assert config["developer_instructions"].startswith(
        '# Agent instructions (scripted)\n\nQuote "this", tab\there, DEL \x7f'
    )


def test_an_mcp_server_that_cannot_start_fails_the_run_before_the_model_is_called(
    repo: Repo, codex: Path
) -> None:
    """`required`: a broken agentfleet MCP server is an error, not an agent without tools.
    `--strict-config` also checks the URL server's keys (http_headers, approval mode)."""
    mcp = McpServer(url="http://127.0.0.1:9/mcp", token="t")
    with serve([text("Should not be asked.")]) as server:
        spec = codex_spec(
            repo,
            codex,
            server,
            executor={"args": [*codex_provider_args(server), "--strict-config"]},
            mcp=mcp,
        )
        ran = run(repo, spec)

    assert ran.result["reason"] == "AgentFailed"
    assert ran.result["message"].startswith("the agent exited 1: codex exited 1 before it started")
    assert server.model_requests == []
    stderr = [e["text"] for e in ran.events_of("text") if e["data"].get("stream") == "stderr"]
    assert any("required MCP servers failed to initialize" in line for line in stderr)
