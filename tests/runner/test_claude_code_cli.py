"""The real `claude` binary through the real runner, against the scripted model server.

Everything but the model is real: the CLI (pinned, installed by dev.py), its tools, the
runner's subprocess handling, git. Each run takes about a second: the server answers at once
and `CLAUDE_CODE_MAX_RETRIES` is 0, so a failure cannot wait in backoff.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agentfleet.executors.claude_code import ClaudeCodeExecutor
from agentfleet.models.agent import AgentConfigSpec, BaseExecutor, ExecutorType, SubAgent
from agentfleet.models.batch import Ticket
from agentfleet.models.meta import AgentType
from agentfleet.models.run import RunKind
from agentfleet.refine.schema import refinement_schema
from agentfleet.runner.agent_process import run_agent
from agentfleet.runner.deadline import Deadline
from agentfleet.runner.spec import McpServer, RunSpec
from tests.support.agent_clis import require_cli
from tests.support.model_servers import ECHO_MCP
from tests.support.model_servers.anthropic import (
    ScriptedServer,
    Turn,
    authentication_error,
    result_text,
    serve,
    text,
    tool_results,
    tool_use,
)
from tests.support.model_servers.record_claude_code import STRUCTURED

from .conftest import BRANCH, PYTEST, Ran, Repo, git, run

TEST_FILE = (
    "from pathlib import Path\n\n\n"
    "def test_hello():\n    assert Path('hello.txt').read_text() == 'hello\\n'\n"
)


@pytest.fixture
def claude(monkeypatch: pytest.MonkeyPatch) -> Path:
    # The criteria's pytest runs in the runner's environment: no bytecode in the commit.
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    return require_cli("claude-code")


def claude_spec(
    repo: Repo,
    claude: Path,
    server: ScriptedServer,
    *,
    executor: dict[str, Any] | None = None,
    agent: dict[str, Any] | None = None,
    criteria: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> RunSpec:
    """The conftest's stage run, with a Claude Code agent talking to `server`."""
    base: dict[str, Any] = {
        "type": ExecutorType.CLAUDE_CODE,
        "command": [str(claude)],
        "env": {**server.env(), "PYTHONDONTWRITEBYTECODE": "1"},
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


def last_result_event(ran: Ran) -> dict[str, Any]:
    return [e for e in ran.events if e["type"] == "result"][-1]


def test_the_agent_writes_code_runs_its_tests_and_the_run_succeeds_with_a_commit(
    repo: Repo, claude: Path
) -> None:
    def after_tests(body: dict[str, Any]) -> Any:
        outcome = result_text(tool_results(body)[0])
        return text("Tests pass." if "1 passed" in outcome else f"Tests failed: {outcome}")

    turns: list[Turn] = [
        tool_use("Write", {"file_path": "hello.txt", "content": "hello\n"}),
        tool_use("Write", {"file_path": "test_hello.py", "content": TEST_FILE}),
        tool_use("Bash", {"command": PYTEST, "description": "Run the tests"}),
        after_tests,
    ]
    criteria = [
        {"type": "file_created", "pattern": "hello.txt"},
        {"type": "tests_pass", "command": PYTEST},
    ]
    with serve(turns) as server:
        spec = claude_spec(
            repo,
            claude,
            server,
            agent={"tools_enabled": [f"Bash({sys.executable} -m pytest *)", "Write"]},
            criteria=criteria,
        )
        ran = run(repo, spec)

    assert not server.exhausted
    assert ran.exit_code == 0, ran.result["message"]
    assert ran.result["outcome"] == "Succeeded"
    assert [(c["type"], c["passed"]) for c in ran.result["criteria"]] == [
        ("file_created", True),
        ("tests_pass", True),
    ]
    calls = [(e["tool"], e["data"]["input"]) for e in ran.events_of("tool_call")]
    assert [tool for tool, _ in calls] == ["Write", "Write", "Bash"]
    bash_result = ran.events_of("tool_result")[-1]
    assert bash_result["tool"] == "Bash"
    assert "1 passed" in bash_result["text"]
    assert ran.events_of("text")[-1]["text"] == "Tests pass."

    assert ran.result["commit"] == repo.head()
    message = git(repo.worktree, "log", "-1", "--format=%B", BRANCH)
    for trailer in ("Ticket: T-1", "Stage: dev", "Run: t1-dev-1", "Agent: scripted"):
        assert trailer in message
    committed = git(repo.worktree, "show", "--name-only", "--format=", "HEAD").split()
    assert sorted(committed) == ["hello.txt", "test_hello.py"]

    result_event = last_result_event(ran)
    assert ran.result["costUsd"] > 0
    assert ran.result["costUsd"] == result_event["costUsd"]
    assert ran.result["tokens"] == result_event["tokens"]
    assert ran.result["tokens"]["input"] == 4 * 120  # four model turns of the default usage


def test_max_turns_fails_the_run_as_agent_failed_naming_max_turns(repo: Repo, claude: Path) -> None:
    turns = [tool_use("Bash", {"command": "ls"}) for _ in range(4)]
    with serve(turns) as server:
        ran = run(repo, claude_spec(repo, claude, server, executor={"max_turns": 2}))

    assert ran.exit_code == 1
    assert ran.result["reason"] == "AgentFailed"
    assert last_result_event(ran)["text"] == "reached max turns (2)"
    assert "reached max turns (2)" in ran.result["message"]
    assert len(server.main_requests) == 2


def test_a_restricted_tool_is_not_offered_to_the_model_and_cannot_run(
    repo: Repo, claude: Path
) -> None:
    turns = [tool_use("Bash", {"command": "touch hacked.txt"}), text("I cannot run Bash.")]
    with serve(turns) as server:
        spec = claude_spec(repo, claude, server, agent={"tool_restrictions": ["Bash"]})
        ran = run(repo, spec)

    first = server.main_requests[0]
    assert "Bash" not in first.tool_names
    assert "Write" in first.tool_names
    refused = ran.events_of("tool_result")[0]
    assert refused["data"]["isError"] is True
    assert "No such tool available: Bash" in refused["text"]
    assert not (repo.worktree / "hacked.txt").exists()
    assert ran.result["outcome"] == "Succeeded"


def test_a_command_not_allowed_is_denied_and_reported(repo: Repo, claude: Path) -> None:
    command = f"{sys.executable} -c \"open('hacked.txt', 'w')\""
    turns = [tool_use("Bash", {"command": command}), text("It was denied.")]
    with serve(turns) as server:
        ran = run(repo, claude_spec(repo, claude, server))

    denied = [e for e in ran.events_of("error") if e["data"].get("kind") == "permissionDenied"]
    assert [e["tool"] for e in denied] == ["Bash"]
    assert last_result_event(ran)["data"]["permissionDenials"][0]["tool"] == "Bash"
    assert not (repo.worktree / "hacked.txt").exists()


def test_an_authentication_failure_fails_fast_as_agent_failed_naming_authentication(
    repo: Repo, claude: Path
) -> None:
    started = time.monotonic()
    with serve([authentication_error()]) as server:
        ran = run(repo, claude_spec(repo, claude, server))
    elapsed = time.monotonic() - started

    assert ran.result["reason"] == "AgentFailed"
    assert last_result_event(ran)["text"].startswith("authentication failed: ")
    assert "authentication failed: Invalid API key" in ran.result["message"]
    assert [e["data"]["kind"] for e in ran.events_of("error")] == ["authentication_failed"]
    assert len(server.main_requests) == 1  # maxRetries 0: no retry
    assert elapsed < 20


def test_the_system_prompt_carries_the_agent_and_stage_instructions(
    repo: Repo, claude: Path
) -> None:
    with serve([text("Nothing to do.")]) as server:
        ran = run(repo, claude_spec(repo, claude, server))

    request = server.main_requests[0]
    assert "# Agent instructions (scripted)\n\nWrite small, tested changes." in request.system_text
    assert "# Stage instructions (dev)\n\nWrite hello.txt." in request.system_text
    assert "# Task: Add a greeting" in json.dumps(request.body["messages"])  # stdin prompt
    assert request.headers["x-api-key"] == "test-key"
    assert ran.result["outcome"] == "Succeeded"


def test_a_sub_agent_is_offered_and_runs_with_its_own_prompt_and_tools(
    repo: Repo, claude: Path
) -> None:
    reviewer = SubAgent(
        agent_type=AgentType.CODE_REVIEW,
        description="Reviews diffs before commit",
        specialized_prompt="You review code for agentfleet.",
        tools=["Read"],
    )
    delegate = {
        "description": "Review",
        "prompt": "Review the change",
        "subagent_type": "reviewer",
        "run_in_background": False,
    }
    turns = [tool_use("Agent", delegate), text("No findings."), text("Reviewed.")]
    with serve(turns) as server:
        ran = run(
            repo, claude_spec(repo, claude, server, agent={"sub_agents": {"reviewer": reviewer}})
        )

    main, sub, _ = server.main_requests
    assert "reviewer: Reviews diffs before commit" in main.all_text
    assert sub.tool_names == ["Read"]
    assert "You review code for agentfleet." in sub.system_text
    handed_back = ran.events_of("tool_result")[0]
    assert (handed_back["tool"], "No findings." in handed_back["text"]) == ("Agent", True)
    assert ran.result["outcome"] == "Succeeded"


def test_the_mcp_server_of_the_run_is_connected_and_its_tools_callable(
    repo: Repo, claude: Path
) -> None:
    turns = [tool_use("mcp__agentfleet__echo", {"text": "ping"}), text("Echoed.")]
    with serve(turns) as server:
        spec = claude_spec(repo, claude, server)
        spec = spec.model_copy(
            update={"mcp": McpServer(command=[sys.executable, str(ECHO_MCP)], token="s3cret")}
        )
        ran = run(repo, spec)

    assert "mcp__agentfleet__echo" in server.main_requests[0].all_text  # listed as deferred
    assert not [e for e in ran.events_of("error") if e["data"].get("kind") == "mcpServer"]
    echoed = ran.events_of("tool_result")[0]
    assert echoed["tool"] == "mcp__agentfleet__echo"
    assert "echo: ping" in echoed["text"]
    assert echoed["data"]["isError"] is False
    config = json.loads((repo.context_dir / "mcp.json").read_text())
    assert config["mcpServers"]["agentfleet"]["env"] == {"AGENTFLEET_MCP_TOKEN": "s3cret"}
    assert (repo.context_dir / "mcp.json").stat().st_mode & 0o777 == 0o600


def test_a_refinement_answers_through_the_structured_output_tool(repo: Repo, claude: Path) -> None:
    schema = refinement_schema()

    with serve([tool_use("StructuredOutput", STRUCTURED)]) as server:
        spec = claude_spec(repo, claude, server).model_copy(
            update={
                "name": "b1-refine-1",
                "kind": RunKind.REFINEMENT,
                "task": None,
                "task_spec": None,
                "stage_spec": None,
                "branch": None,
                "stage": "refine",
                "tickets": [Ticket(id="T-1", raw_description="greet people")],
                "worktree": str(repo.root),
            }
        )
        ran = run(repo, spec)

    offered = server.main_requests[0].tool("StructuredOutput")
    assert offered is not None
    schema.pop("$schema")
    assert offered["input_schema"] == schema
    assert ran.result["outcome"] == "Succeeded", ran.result["message"]
    refined = ran.result["refinedTickets"]
    assert [t["id"] for t in refined] == ["T-1"]
    assert refined[0]["title"] == STRUCTURED["tickets"][0]["title"]
    assert len(server.main_requests) == 1  # the CLI ends the run once the answer is given


def refinement_spec(repo: Repo, claude: Path, server: ScriptedServer) -> RunSpec:
    return claude_spec(repo, claude, server).model_copy(
        update={
            "name": "b1-refine-1",
            "kind": RunKind.REFINEMENT,
            "task": None,
            "task_spec": None,
            "stage_spec": None,
            "branch": None,
            "stage": "refine",
            "tickets": [Ticket(id="T-1", raw_description="greet people")],
            "worktree": str(repo.root),
        }
    )


def test_a_refinement_that_never_gives_the_structured_answer_is_an_invalid_refinement(
    repo: Repo, claude: Path
) -> None:
    turns = [text("I think the ticket is fine as it is."), text("Really, it is fine.")]
    with serve(turns) as server:
        ran = run(repo, refinement_spec(repo, claude, server))

    assert ran.result["reason"] == "InvalidRefinement", ran.result["message"]
    assert "no JSON object" in ran.result["message"], "the text was read too, and had none"


def test_tools_enabled_is_all_the_agent_has_so_a_read_only_reviewer_cannot_write(
    repo: Repo, claude: Path
) -> None:
    turns = [
        tool_use("Write", {"file_path": "pwned.txt", "content": "x"}),
        text("I could not write."),
    ]
    with serve(turns) as server:
        ran = run(
            repo, claude_spec(repo, claude, server, agent={"tools_enabled": ["Read", "Grep"]})
        )

    offered = server.main_requests[0].tool_names
    assert "Write" not in offered
    assert "Edit" not in offered
    assert "Bash" not in offered
    assert not (repo.worktree / "pwned.txt").exists()
    assert ran.events_of("tool_result")[0]["data"]["isError"] is True


def test_the_structured_answer_is_the_outcome_of_a_refinement_run(repo: Repo, claude: Path) -> None:
    """The executor and the runner's process handling alone: `structured` is the JSON itself."""
    executor = ClaudeCodeExecutor()
    with serve([tool_use("StructuredOutput", STRUCTURED)]) as server:
        spec = claude_spec(repo, claude, server).model_copy(
            update={"kind": RunKind.REFINEMENT, "worktree": str(repo.root)}
        )
        invocation = executor.command(spec, "Refine the tickets.")
        events: list[Any] = []
        agent = run_agent(
            invocation,
            spec.worktree,
            Deadline(60, time.monotonic()),
            None,
            lambda line: events.extend(executor.parse_line(line)),
            lambda line: None,
        )
    outcome = executor.finish(agent.exit_code if agent.exit_code is not None else 127)

    assert agent.exit_code == 0
    assert outcome.ok, outcome.message
    assert outcome.structured == STRUCTURED
    assert json.loads(outcome.text) == STRUCTURED
    assert outcome.cost_usd is not None
    assert outcome.cost_usd > 0


@pytest.mark.skipif(os.geteuid() != 0, reason="the root guard only trips as root")
def test_bypass_as_root_runs_inside_a_sandbox(repo: Repo, claude: Path) -> None:
    command = f"{sys.executable} -c \"open('bypassed.txt', 'w').write('ok')\""
    turns = [tool_use("Bash", {"command": command}), text("Done.")]
    with serve(turns) as server:
        spec = claude_spec(
            repo, claude, server, executor={"permission_mode": "bypassPermissions"}
        ).model_copy(update={"sandboxed": True})
        ran = run(repo, spec)

    assert ran.result["outcome"] == "Succeeded", ran.result["message"]
    assert (repo.worktree / "bypassed.txt").read_text() == "ok"  # no prompt, no allow rule


@pytest.mark.skipif(os.geteuid() != 0, reason="the root guard only trips as root")
def test_bypass_as_root_outside_a_sandbox_is_an_invalid_spec(repo: Repo, claude: Path) -> None:
    with serve([text("never asked")]) as server:
        spec = claude_spec(repo, claude, server, executor={"permission_mode": "bypassPermissions"})
        ran = run(repo, spec)

    assert server.requests == []  # claude never started
    assert ran.result["reason"] == "InvalidSpec"
    assert "non-root user" in ran.result["message"]
