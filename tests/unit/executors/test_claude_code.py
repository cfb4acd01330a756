"""The Claude Code executor: the command line it builds, and its parser on real CLI output.

The parser tests replay stdout that the real `claude` 2.1.331 printed against the scripted
model server (`recordings/claude_code/`, re-recorded with
`python -m tests.support.model_servers.record_claude_code`).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentfleet.executors import executor_for
from agentfleet.executors.base import InvalidAgentConfigError
from agentfleet.executors.claude_code import (
    SESSION_NAMESPACE,
    ClaudeCodeExecutor,
    session_id_for,
)
from agentfleet.executors.stream import TOOL_RESULT_LIMIT
from agentfleet.models.agent import ExecutorType, SubAgent
from agentfleet.models.log import LogEventType
from agentfleet.models.meta import AgentType
from agentfleet.models.run import RunKind, TokenUsage
from agentfleet.refine.schema import refinement_schema
from agentfleet.runner.spec import McpServer, RunSpec
from tests.support.model_servers.record_claude_code import STRUCTURED
from tests.unit.executors.specs import run_spec

RECORDINGS = Path(__file__).parent / "recordings" / "claude_code"
EXIT_CODES: dict[str, int] = json.loads((RECORDINGS / "exit_codes.json").read_text())
VARIADIC = {"--allowedTools", "--disallowedTools", "--mcp-config"}


def make_spec(
    *,
    executor: dict[str, Any] | None = None,
    agent: dict[str, Any] | None = None,
    **fields: Any,
) -> RunSpec:
    return run_spec(ExecutorType.CLAUDE_CODE, executor=executor, agent=agent, **fields)


def argv_of(spec: RunSpec, prompt: str = "Do the task.") -> list[str]:
    return ClaudeCodeExecutor().command(spec, prompt).argv


def flag_values(argv: list[str], flag: str) -> list[str]:
    """The values after `flag` up to the next flag (how commander reads a variadic option)."""
    index = argv.index(flag) + 1
    values = []
    while index < len(argv) and not argv[index].startswith("-"):
        values.append(argv[index])
        index += 1
    return values


def value_of(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agentfleet.executors.claude_code.os.geteuid", lambda: 0)


@pytest.fixture
def as_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agentfleet.executors.claude_code.os.geteuid", lambda: 1000)


# -- the command line ----------------------------------------------------------------------


def test_executor_for_claude_code_is_a_fresh_claude_code_executor() -> None:
    first = executor_for(ExecutorType.CLAUDE_CODE)
    assert isinstance(first, ClaudeCodeExecutor)
    assert executor_for(ExecutorType.CLAUDE_CODE) is not first


def test_argv_runs_claude_on_path_in_print_mode_with_a_verbose_json_stream() -> None:
    argv = argv_of(make_spec())

    assert argv[:5] == ["claude", "-p", "--output-format", "stream-json", "--verbose"]


def test_base_executor_command_replaces_the_binary() -> None:
    argv = argv_of(make_spec(executor={"command": ["/opt/claude/bin/claude", "--bare"]}))

    assert argv[:3] == ["/opt/claude/bin/claude", "--bare", "-p"]


def test_the_prompt_goes_on_stdin_never_into_argv() -> None:
    prompt = "# Task\n\nDo it; rm -rf / is NOT a command here."
    invocation = ClaudeCodeExecutor().command(make_spec(), prompt)

    assert invocation.stdin_text == prompt
    assert prompt not in invocation.argv
    assert not any("rm -rf" in arg for arg in invocation.argv)


def test_session_id_is_a_uuid5_of_the_run_name_stable_across_builds() -> None:
    argv = argv_of(make_spec(name="t1-dev-1"))
    session = value_of(argv, "--session-id")

    assert session == str(uuid.uuid5(SESSION_NAMESPACE, "t1-dev-1"))
    assert uuid.UUID(session).version == 5
    assert value_of(argv_of(make_spec(name="t1-dev-1")), "--session-id") == session
    assert value_of(argv_of(make_spec(name="t1-dev-2")), "--session-id") != session
    assert session_id_for("t1-dev-1") == session


def test_permission_mode_defaults_to_accept_edits() -> None:
    assert value_of(argv_of(make_spec()), "--permission-mode") == "acceptEdits"


def test_permission_mode_passes_the_configured_mode_through() -> None:
    argv = argv_of(make_spec(executor={"permission_mode": "dontAsk"}))

    assert value_of(argv, "--permission-mode") == "dontAsk"


def test_max_turns_and_model_become_flags_only_when_set() -> None:
    argv = argv_of(make_spec(executor={"max_turns": 7, "model": "sonnet"}))
    assert value_of(argv, "--max-turns") == "7"
    assert value_of(argv, "--model") == "sonnet"

    bare = argv_of(make_spec())
    assert "--max-turns" not in bare
    assert "--model" not in bare


def test_system_prompt_appends_agent_and_stage_instructions_under_headings() -> None:
    text = value_of(argv_of(make_spec()), "--append-system-prompt")

    assert text == (
        "# Agent instructions (dev-agent)\n\nWrite small, tested changes.\n\n"
        "# Stage instructions (dev)\n\nWrite hello.txt."
    )


def test_no_system_prompt_flag_without_instructions() -> None:
    spec = make_spec(agent={"specialized_instructions": "  "}, stage_spec=None)

    assert "--append-system-prompt" not in argv_of(spec)


def test_allowed_and_disallowed_tools_pass_each_rule_as_its_own_argument() -> None:
    spec = make_spec(
        agent={
            "tools_enabled": ["Bash(git *)", "Bash(python -m pytest *)", "Edit"],
            "tool_restrictions": ["WebFetch", "Bash(rm *)"],
        }
    )
    argv = argv_of(spec)

    assert flag_values(argv, "--allowedTools") == [
        "Bash(git *)",
        "Bash(python -m pytest *)",
        "Edit",
    ]
    assert flag_values(argv, "--disallowedTools") == ["WebFetch", "Bash(rm *)"]


@pytest.mark.parametrize("field", ["tools_enabled", "tool_restrictions"])
def test_a_tool_rule_that_looks_like_an_option_is_refused(field: str) -> None:
    spec = make_spec(agent={field: ["Edit", "--dangerously-skip-permissions"]})

    with pytest.raises(InvalidAgentConfigError, match="would read as an option"):
        ClaudeCodeExecutor().command(spec, "prompt")


def test_no_tool_flags_when_the_agent_lists_no_rules() -> None:
    argv = argv_of(make_spec())

    assert "--allowedTools" not in argv
    assert "--disallowedTools" not in argv


def test_variadic_flags_are_closed_by_a_flag_and_extra_args_come_last() -> None:
    spec = make_spec(
        executor={"args": ["--effort", "high"], "max_turns": 3},
        agent={"tools_enabled": ["Edit"], "tool_restrictions": ["WebFetch"]},
        mcp=McpServer(command=["agentfleet", "mcp"]),
    )
    argv = argv_of(spec)

    assert argv[-2:] == ["--effort", "high"]
    for flag in VARIADIC:
        values = flag_values(argv, flag)
        after = argv.index(flag) + 1 + len(values)
        assert argv[after].startswith("--"), f"{flag} is not closed by a flag"
    last_variadic = max(argv.index(flag) for flag in VARIADIC)
    assert last_variadic < argv.index("--session-id")


def test_sub_agents_become_inline_agent_definitions() -> None:
    spec = make_spec(
        agent={
            "sub_agents": {
                "reviewer": SubAgent(
                    agent_type=AgentType.CODE_REVIEW,
                    description="Reviews diffs before commit",
                    specialized_prompt="You review code.",
                    tools=["Read", "Grep"],
                    tool_restrictions=["Bash"],
                    model="haiku",
                ),
                "writer": SubAgent(agent_type=AgentType.DOCUMENTATION),
            }
        }
    )
    agents = json.loads(value_of(argv_of(spec), "--agents"))

    assert agents == {
        "reviewer": {
            "description": "Reviews diffs before commit",
            "prompt": "You review code.",
            "tools": ["Read", "Grep"],
            "disallowedTools": ["Bash"],
            "model": "haiku",
        },
        "writer": {
            "description": "Documentation sub-agent",
            "prompt": "Documentation sub-agent",
        },
    }


def test_no_agents_flag_without_sub_agents() -> None:
    assert "--agents" not in argv_of(make_spec())


def test_stdio_mcp_server_is_written_to_a_file_named_by_a_strict_mcp_config() -> None:
    spec = make_spec(mcp=McpServer(command=["agentfleet", "mcp", "--run", "t1"], token="s3cret"))
    invocation = ClaudeCodeExecutor().command(spec, "prompt")
    argv = invocation.argv

    assert flag_values(argv, "--mcp-config") == ["/work/context/mcp.json"]
    assert argv[argv.index("--mcp-config") + 2] == "--strict-mcp-config"
    assert "mcp__agentfleet" in flag_values(argv, "--allowedTools")
    config = json.loads(invocation.files["mcp.json"])
    assert config == {
        "mcpServers": {
            "agentfleet": {
                "type": "stdio",
                "command": "agentfleet",
                "args": ["mcp", "--run", "t1"],
                "env": {"AGENTFLEET_MCP_TOKEN": "s3cret"},
            }
        }
    }
    assert not any("s3cret" in arg for arg in argv)
    assert "s3cret" not in json.dumps(invocation.env)


def test_http_mcp_server_sends_the_token_as_a_bearer_header_from_the_file_only() -> None:
    spec = make_spec(mcp=McpServer(url="https://agentfleet.svc:8443/mcp", token="s3cret"))
    invocation = ClaudeCodeExecutor().command(spec, "prompt")

    config = json.loads(invocation.files["mcp.json"])
    assert config["mcpServers"]["agentfleet"] == {
        "type": "http",
        "url": "https://agentfleet.svc:8443/mcp",
        "headers": {"Authorization": "Bearer s3cret"},
    }
    assert not any("s3cret" in arg for arg in invocation.argv)
    assert "s3cret" not in json.dumps(invocation.env)


def test_no_mcp_flags_without_an_mcp_server() -> None:
    invocation = ClaudeCodeExecutor().command(make_spec(), "prompt")

    assert "--mcp-config" not in invocation.argv
    assert "--strict-mcp-config" not in invocation.argv
    assert invocation.files == {}


def test_refinement_runs_ask_for_the_refinement_schema_as_structured_output() -> None:
    spec = make_spec(kind=RunKind.REFINEMENT, task=None, stage_spec=None)

    schema = json.loads(value_of(argv_of(spec), "--json-schema"))

    expected = refinement_schema()
    expected.pop("$schema")  # Claude Code's validator rejects the 2020-12 meta-schema
    assert schema == expected
    assert "tickets" in schema["properties"]


def test_stage_runs_ask_for_no_structured_output() -> None:
    assert "--json-schema" not in argv_of(make_spec())


def test_env_adds_only_agentfleet_variables_and_claude_settings() -> None:
    spec = make_spec(executor={"env": {"ANTHROPIC_BASE_URL": "http://127.0.0.1:1"}})
    env = ClaudeCodeExecutor().command(spec, "prompt").env

    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:1"
    assert env["AGENTFLEET_RUN"] == "t1-dev-1"
    assert env["AGENTFLEET_CONTEXT_DIR"] == "/work/context"
    assert env["CLAUDE_CONFIG_DIR"] == "/work/context/claude"
    for name in (
        "DISABLE_TELEMETRY",
        "DISABLE_AUTOUPDATER",
        "DISABLE_ERROR_REPORTING",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
        "CLAUDE_CODE_STARTUP_FAILURE_RESULTS",
    ):
        assert env[name] == "1"
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "2"
    assert "PATH" not in env  # inherited by the runner, not copied here
    assert "IS_SANDBOX" not in env


def test_max_retries_sets_the_cli_retry_count() -> None:
    env = ClaudeCodeExecutor().command(make_spec(executor={"max_retries": 0}), "p").env

    assert env["CLAUDE_CODE_MAX_RETRIES"] == "0"


@pytest.mark.usefixtures("as_root")
def test_bypass_as_root_outside_a_sandbox_is_refused_with_what_to_do_instead() -> None:
    spec = make_spec(executor={"permission_mode": "bypassPermissions"})

    with pytest.raises(InvalidAgentConfigError) as raised:
        ClaudeCodeExecutor().command(spec, "prompt")

    message = str(raised.value)
    assert "root" in message
    assert "non-root user" in message
    assert "acceptEdits" in message
    assert "toolsEnabled" in message


@pytest.mark.usefixtures("as_root")
def test_bypass_as_root_in_a_sandbox_sets_is_sandbox() -> None:
    spec = make_spec(executor={"permission_mode": "bypassPermissions"}, sandboxed=True)
    invocation = ClaudeCodeExecutor().command(spec, "prompt")

    assert invocation.env["IS_SANDBOX"] == "1"
    assert value_of(invocation.argv, "--permission-mode") == "bypassPermissions"
    assert "--dangerously-skip-permissions" not in invocation.argv


@pytest.mark.usefixtures("as_user")
def test_bypass_as_a_normal_user_needs_no_sandbox_flag() -> None:
    spec = make_spec(executor={"permission_mode": "bypassPermissions"})
    invocation = ClaudeCodeExecutor().command(spec, "prompt")

    assert "IS_SANDBOX" not in invocation.env


@pytest.mark.usefixtures("as_root")
def test_other_modes_as_root_need_no_sandbox_flag() -> None:
    invocation = ClaudeCodeExecutor().command(make_spec(), "prompt")

    assert "IS_SANDBOX" not in invocation.env


# -- the parser on recorded real output ----------------------------------------------------


def replay(name: str, executor: ClaudeCodeExecutor | None = None) -> tuple[list[Any], Any]:
    executor = executor or ClaudeCodeExecutor()
    events = []
    for line in (RECORDINGS / f"{name}.jsonl").read_text().splitlines():
        events.extend(executor.parse_line(line))
    return events, executor.finish(EXIT_CODES[name])


def recorded_result(name: str) -> dict[str, Any]:
    lines = (RECORDINGS / f"{name}.jsonl").read_text().splitlines()
    results = [json.loads(line) for line in lines if '"type":"result"' in line]
    last: dict[str, Any] = results[-1]
    return last


def types(events: list[Any]) -> list[str]:
    return [e.type.value for e in events]


def test_success_with_tool_use_gives_calls_results_text_and_the_reported_usage() -> None:
    events, outcome = replay("success_tool_use")
    raw = recorded_result("success_tool_use")

    assert types(events) == [
        "tool_call",
        "tool_result",
        "tool_call",
        "tool_result",
        "text",
        "result",
    ]
    write_call, write_result, bash_call, bash_result = events[:4]
    assert (write_call.tool, write_call.data["input"]["file_path"]) == ("Write", "hello.txt")
    assert write_result.tool == "Write"
    assert write_result.data == {"id": write_call.data["id"], "isError": False}
    assert (bash_call.tool, bash_call.data["input"]["command"]) == ("Bash", "cat hello.txt")
    assert (bash_result.tool, bash_result.text) == ("Bash", "hello")
    assert outcome.ok
    assert outcome.message == ""
    assert outcome.text == "Wrote hello.txt; it says hello."
    assert outcome.cost_usd == raw["total_cost_usd"] > 0
    assert outcome.tokens == TokenUsage(input=360, output=90)
    result = events[-1]
    assert (result.tokens, result.cost_usd) == (outcome.tokens, outcome.cost_usd)
    assert result.data["subtype"] == "success"
    assert result.data["isError"] is False
    assert result.data["numTurns"] == 3
    assert result.data["terminalReason"] == "completed"
    assert result.data["sessionId"] == session_id_for("record-claude-code")
    assert outcome.session_id == session_id_for("record-claude-code")


def test_max_turns_fails_with_a_message_naming_the_limit() -> None:
    events, outcome = replay("max_turns")

    assert EXIT_CODES["max_turns"] == 1
    assert not outcome.ok
    assert outcome.message == "reached max turns (3)"
    assert events[-1].type is LogEventType.RESULT
    assert events[-1].data["terminalReason"] == "max_turns"
    assert events[-1].data["errors"] == ["Reached maximum number of turns (3)"]
    assert outcome.tokens is not None
    assert outcome.tokens.input > 0


def test_authentication_failure_is_a_failure_although_its_subtype_says_success() -> None:
    events, outcome = replay("auth_failure")

    assert recorded_result("auth_failure")["subtype"] == "success"
    assert not outcome.ok
    assert outcome.message.startswith("authentication failed: ")
    assert "Invalid API key" in outcome.message
    errors = [e for e in events if e.type is LogEventType.ERROR]
    assert [e.data["kind"] for e in errors] == ["authentication_failed"]
    assert outcome.cost_usd == 0


def test_permission_denied_is_an_error_event_and_listed_in_the_result() -> None:
    events, outcome = replay("permission_denied")

    denied = [e for e in events if e.type is LogEventType.ERROR]
    assert len(denied) == 1
    assert denied[0].tool == "Bash"
    assert denied[0].data["kind"] == "permissionDenied"
    assert "approval" in denied[0].text
    tool_result = next(e for e in events if e.type is LogEventType.TOOL_RESULT)
    assert tool_result.data["isError"] is True
    assert events[-1].data["permissionDenials"] == [{"tool": "Bash", "id": denied[0].data["id"]}]
    assert outcome.ok  # the run finished; the criteria judge the work


def test_api_retry_becomes_a_retry_event_with_its_numbers() -> None:
    events, outcome = replay("api_retry")

    retry = events[0]
    assert retry.type is LogEventType.RETRY
    assert retry.data["attempt"] == 1
    assert retry.data["maxRetries"] == 1
    assert retry.data["status"] == 529
    assert retry.data["error"] == "overloaded"
    assert retry.data["delayMs"] > 0
    assert outcome.ok


def test_tokens_sum_model_usage_so_sub_agents_count() -> None:
    _, outcome = replay("subagent")
    raw = recorded_result("subagent")

    models = raw["modelUsage"]
    assert len(models) == 2  # the main model and the sub-agent's haiku
    assert outcome.tokens == TokenUsage(
        input=sum(m["inputTokens"] for m in models.values()),
        output=sum(m["outputTokens"] for m in models.values()),
        cache_read=sum(m["cacheReadInputTokens"] for m in models.values()),
        cache_creation=sum(m["cacheCreationInputTokens"] for m in models.values()),
    )
    assert outcome.tokens.input > raw["usage"]["input_tokens"]
    assert outcome.cost_usd == raw["total_cost_usd"]


def test_structured_output_is_the_outcome_structured_answer() -> None:
    executor = ClaudeCodeExecutor()
    executor._wants_structured = True  # as command() sets it for a refinement run
    events, outcome = replay("structured_output", executor)

    assert outcome.ok
    assert outcome.structured == STRUCTURED
    assert json.loads(outcome.text) == STRUCTURED
    assert events[0].tool == "StructuredOutput"


def test_mcp_tool_calls_are_named_by_their_mcp_tool_name() -> None:
    events, outcome = replay("mcp_echo")

    call, result = events[0], events[1]
    assert call.tool == result.tool == "mcp__agentfleet__echo"
    assert "echo: hi" in result.text
    assert not [e for e in events if e.type is LogEventType.ERROR]
    assert outcome.ok


def test_bypass_refused_as_root_fails_with_the_cli_reason() -> None:
    _, outcome = replay("bypass_root")

    assert not outcome.ok
    assert "bypass_root" in outcome.message
    assert "root" in outcome.message


@pytest.mark.parametrize("name", sorted(EXIT_CODES))
def test_every_recording_parses_into_exactly_one_final_result(name: str) -> None:
    events, outcome = replay(name)

    assert types(events).count("result") == 1
    assert events[-1].type is LogEventType.RESULT
    assert outcome.ok is (not recorded_result(name)["is_error"])


# -- the parser on made-up edge cases ------------------------------------------------------


def line(obj: dict[str, Any]) -> str:
    return json.dumps(obj)


def result_line(**fields: Any) -> str:
    values: dict[str, Any] = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": "done",
        "total_cost_usd": 0.5,
        "usage": {"input_tokens": 10, "output_tokens": 2},
        "session_id": "s-1",
    }
    values.update(fields)
    return line(values)


def test_no_result_and_a_signal_exit_is_a_crash() -> None:
    executor = ClaudeCodeExecutor()
    executor.parse_line(line({"type": "system", "subtype": "init", "session_id": "s-1"}))

    outcome = executor.finish(143)

    assert not outcome.ok
    assert outcome.message == "claude exited 143 without a final result (crashed or killed)"
    assert (outcome.tokens, outcome.cost_usd) == (None, None)
    assert outcome.session_id == "s-1"


def test_no_result_fails_even_when_claude_exits_0() -> None:
    outcome = ClaudeCodeExecutor().finish(0)

    assert not outcome.ok
    assert "exited 0 without a final result" in outcome.message


def test_is_error_decides_not_the_subtype() -> None:
    executor = ClaudeCodeExecutor()
    executor.parse_line(result_line(subtype="success", is_error=True, result="API Error: boom"))
    assert not executor.finish(1).ok

    executor = ClaudeCodeExecutor()
    executor.parse_line(result_line(subtype="some_new_subtype", is_error=False))
    assert executor.finish(0).ok


def test_the_last_of_several_results_describes_the_session() -> None:
    executor = ClaudeCodeExecutor()
    executor.parse_line(result_line(result="first", total_cost_usd=0.1))
    executor.parse_line(result_line(result="second", total_cost_usd=0.3))

    outcome = executor.finish(0)

    assert (outcome.text, outcome.cost_usd) == ("second", 0.3)


def test_usage_counts_when_model_usage_is_missing() -> None:
    executor = ClaudeCodeExecutor()
    usage = {
        "input_tokens": 10,
        "output_tokens": 2,
        "cache_read_input_tokens": 5,
        "cache_creation_input_tokens": 7,
    }
    executor.parse_line(result_line(usage=usage))

    assert executor.finish(0).tokens == TokenUsage(
        input=10, output=2, cache_read=5, cache_creation=7
    )


def test_a_missing_structured_answer_is_an_invalid_answer_not_a_crash() -> None:
    executor = ClaudeCodeExecutor()
    executor.command(make_spec(kind=RunKind.REFINEMENT, stage_spec=None), "refine")
    executor.parse_line(result_line(result="I refined them in prose."))

    outcome = executor.finish(0)

    assert outcome.ok, "the agent ran; the runner judges its answer (and reads its text)"
    assert outcome.answer_invalid
    assert outcome.text == "I refined them in prose."
    assert "StructuredOutput" in outcome.message


def test_giving_up_on_the_structured_answer_is_an_invalid_answer_too() -> None:
    executor = ClaudeCodeExecutor()
    executor.command(make_spec(kind=RunKind.REFINEMENT, stage_spec=None), "refine")
    executor.parse_line(
        result_line(subtype="error_max_structured_output_retries", is_error=True, result="")
    )

    outcome = executor.finish(1)

    assert (outcome.ok, outcome.answer_invalid) == (True, True)


def test_a_stage_run_without_structured_output_is_not_judged_on_it() -> None:
    executor = ClaudeCodeExecutor()
    executor.command(make_spec(), "work")
    executor.parse_line(result_line(result="done"))

    assert executor.finish(0).answer_invalid is False


def test_tools_enabled_is_the_whole_built_in_tool_set_and_each_rule_is_pre_approved() -> None:
    spec = make_spec(
        agent={
            "tools_enabled": ["Read", "Bash(git diff*)", "Bash(python -m pytest*)", "mcp__x"],
            "sub_agents": {"helper": {"agentType": "QualityAssurance"}},
        }
    )

    argv = argv_of(spec)

    assert argv[argv.index("--tools") + 1] == "Read,Bash,Agent"
    allowed = argv[argv.index("--allowedTools") + 1 : argv.index("--session-id")]
    assert allowed == ["Read", "Bash(git diff*)", "Bash(python -m pytest*)", "mcp__x"]


def test_no_tools_enabled_leaves_the_cli_default_tool_set() -> None:
    assert "--tools" not in argv_of(make_spec())
    sub = {"sub_agents": {"helper": {"agentType": "QualityAssurance"}}}
    assert "--tools" not in argv_of(make_spec(agent=sub)), "sub-agents alone restrict nothing"


def test_a_session_the_config_dir_already_has_gets_the_next_id(tmp_path: Path) -> None:
    config = tmp_path / "claude"
    first = session_id_for("b-t1-dev-1", str(config))
    (config / "projects" / "-work-tree").mkdir(parents=True)
    (config / "projects" / "-work-tree" / f"{first}.jsonl").write_text("{}\n")

    second = session_id_for("b-t1-dev-1", str(config))

    assert second != first
    assert second == session_id_for("b-t1-dev-1#1")


def test_non_json_stdout_is_text_from_stdout() -> None:
    events = ClaudeCodeExecutor().parse_line("Warning: something odd")

    assert [(e.type, e.text, e.data) for e in events] == [
        (LogEventType.TEXT, "Warning: something odd", {"stream": "stdout"})
    ]


def test_long_tool_results_are_cut_and_block_lists_are_joined() -> None:
    executor = ClaudeCodeExecutor()
    executor.parse_line(
        line(
            {
                "type": "assistant",
                "message": {"content": [{"type": "tool_use", "id": "t1", "name": "Read"}]},
            }
        )
    )
    long = "x" * (TOOL_RESULT_LIMIT * 3)
    blocks = [{"type": "text", "text": "a"}, {"type": "image"}, {"type": "text", "text": long}]
    events = executor.parse_line(
        line(
            {
                "type": "user",
                "message": {
                    "content": [{"type": "tool_result", "tool_use_id": "t1", "content": blocks}]
                },
            }
        )
    )

    (event,) = events
    assert event.tool == "Read"
    assert event.text.startswith("a\nxxx")
    assert len(event.text) < TOOL_RESULT_LIMIT + 100
    assert "more characters" in event.text


def test_an_mcp_server_that_did_not_connect_is_an_error_event() -> None:
    init = {
        "type": "system",
        "subtype": "init",
        "session_id": "s-1",
        "mcp_servers": [
            {"name": "agentfleet", "status": "failed"},
            {"name": "ok", "status": "connected"},
        ],
    }
    events = ClaudeCodeExecutor().parse_line(line(init))

    assert [(e.type, e.data) for e in events] == [
        (
            LogEventType.ERROR,
            {"kind": "mcpServer", "server": "agentfleet", "status": "failed"},
        )
    ]


def test_unknown_types_and_subtypes_are_ignored() -> None:
    executor = ClaudeCodeExecutor()
    for obj in (
        {"type": "stream_event", "event": {}},
        {"type": "system", "subtype": "compact_boundary"},
        {"type": "rate_limit_event"},
        {"type": "tool_progress", "tool_use_id": "x"},
    ):
        assert executor.parse_line(line(obj)) == []


# -- never raise on odd input --------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the plausible shape, sometimes anything JSON: where a parser trips."""
    return strategy | strategy | JSON_VALUES


def shaped(fixed: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        fixed, optional={key: maybe(value) for key, value in optional.items()}
    )


TEXTS = st.text(max_size=12)
COUNTS = st.integers(-5, 10**12)
INNER_BLOCKS = st.lists(shaped({"type": st.just("text")}, {"text": TEXTS}), min_size=1, max_size=3)
ASSISTANT_BLOCKS = (
    shaped({"type": st.just("text")}, {"text": TEXTS})
    | shaped({"type": st.just("tool_use")}, {"id": TEXTS, "name": TEXTS, "input": JSON_VALUES})
    | shaped({"type": st.sampled_from(["thinking", "image", "x"])}, {"text": TEXTS})
)
USER_BLOCKS = shaped(
    {"type": st.just("tool_result")},
    {
        "tool_use_id": TEXTS,
        "content": TEXTS | INNER_BLOCKS | INNER_BLOCKS,
        "is_error": st.booleans(),
    },
) | shaped({"type": st.just("text")}, {"text": TEXTS})
ASSISTANT_MESSAGE = maybe(
    st.fixed_dictionaries({"content": maybe(st.lists(ASSISTANT_BLOCKS, min_size=1, max_size=3))})
)
USER_MESSAGE = maybe(
    st.fixed_dictionaries({"content": maybe(st.lists(USER_BLOCKS, min_size=1, max_size=3))})
)
MODEL_USAGE = st.dictionaries(
    TEXTS,
    shaped(
        {},
        {
            "inputTokens": COUNTS,
            "outputTokens": COUNTS,
            "cacheReadInputTokens": COUNTS,
            "cacheCreationInputTokens": COUNTS,
        },
    ),
    max_size=3,
)
STREAM_OBJECTS = (
    shaped(
        {"type": st.just("assistant"), "message": ASSISTANT_MESSAGE},
        {"error": TEXTS, "parent_tool_use_id": TEXTS, "session_id": TEXTS},
    )
    | shaped(
        {"type": st.just("user"), "message": USER_MESSAGE},
        {"parent_tool_use_id": TEXTS | st.none()},
    )
    | shaped(
        {"type": st.just("system"), "subtype": st.sampled_from(["init", "api_retry", "x"])},
        {
            "session_id": TEXTS,
            "model": TEXTS,
            "mcp_servers": st.lists(
                shaped({"status": TEXTS}, {"name": TEXTS}), min_size=1, max_size=3
            ),
            "attempt": COUNTS,
            "max_retries": COUNTS,
            "retry_delay_ms": COUNTS,
            "error_status": COUNTS | st.none(),
            "error": TEXTS,
        },
    )
    | shaped(
        {"type": st.just("system"), "subtype": st.just("permission_denied")},
        {"tool_name": TEXTS, "tool_use_id": TEXTS, "message": TEXTS},
    )
    | shaped(
        {"type": st.just("result")},
        {
            "subtype": st.sampled_from(["success", "error_max_turns", "error_during_execution"]),
            "is_error": st.booleans(),
            "result": TEXTS,
            "errors": st.lists(TEXTS, max_size=2),
            "terminal_reason": st.sampled_from(["completed", "max_turns", "api_error"]),
            "startup_failure_reason": TEXTS,
            "api_error_status": st.sampled_from([401, 429, 500]) | st.none(),
            "num_turns": COUNTS,
            "total_cost_usd": st.floats() | COUNTS,
            "usage": shaped({}, {"input_tokens": COUNTS, "output_tokens": COUNTS}),
            "modelUsage": MODEL_USAGE,
            "permission_denials": st.lists(
                shaped({}, {"tool_name": TEXTS, "tool_use_id": TEXTS}), max_size=2
            ),
            "structured_output": JSON_VALUES,
            "session_id": TEXTS,
        },
    )
    | st.dictionaries(TEXTS, JSON_VALUES, max_size=4)
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(max_size=200) | JSON_VALUES.map(json.dumps), max_size=6))
def test_arbitrary_lines_never_raise(lines: list[str]) -> None:
    executor = ClaudeCodeExecutor()
    for text in lines:
        executor.parse_line(text)
    executor.finish(1)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STREAM_OBJECTS, min_size=1, max_size=6), st.integers(0, 255))
def test_stream_shaped_objects_with_odd_fields_never_raise(
    objects: list[dict[str, Any]], exit_code: int
) -> None:
    executor = ClaudeCodeExecutor()
    for obj in objects:
        for event in executor.parse_line(json.dumps(obj)):
            assert isinstance(event.text, str)
    outcome = executor.finish(exit_code)
    assert isinstance(outcome.ok, bool)
