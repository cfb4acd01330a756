"""The Codex executor: its command line, its per-run CODEX_HOME, and its parser on real output.

The parser tests replay stdout that the real `codex` 0.169.0 printed against the scripted
Responses API (`recordings/codex/`, exit codes in `exit_codes.json`; the temporary worktree
is replaced by /work/tree and the server's port by PORT). Re-record them, after a Codex
upgrade for instance, with

    .venv/bin/python -m tests.support.model_servers.openai_responses record [SCENARIO ...]

then run this file: a failure is a change in the CLI's stream that the parser must follow.
"""

from __future__ import annotations

import json
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentfleet.executors import executor_for
from agentfleet.executors.base import AgentEvent, InvalidAgentConfigError, Invocation
from agentfleet.executors.codex import (
    CONFIG_FILE,
    LAST_MESSAGE_FILE,
    MCP_TOKEN_VARIABLE,
    RULES_FILE,
    CodexExecutor,
    selected_provider,
    toml_document,
    toml_string,
)
from agentfleet.executors.stream import TOOL_RESULT_LIMIT
from agentfleet.models.agent import ExecutorType
from agentfleet.models.log import LogEventType
from agentfleet.models.run import RunKind, TokenUsage
from agentfleet.runner.spec import McpServer, RunSpec
from tests.support.model_servers.openai_responses import (
    API_KEY_ENV,
    PROVIDER,
    Usage,
    codex_provider_args,
    codex_provider_env,
    function_call,
    http_error,
    reasoning,
    reply,
    serve,
    text,
)
from tests.unit.executors.specs import CONTEXT, run_spec

RECORDINGS = Path(__file__).parent / "recordings" / "codex"
EXIT_CODES: dict[str, int] = json.loads((RECORDINGS / "exit_codes.json").read_text())
PROVIDER_ARGS = [
    "-c",
    'model_provider="corp"',
    "-c",
    'model_providers.corp.name="Corp"',
    "-c",
    'model_providers.corp.base_url="https://llm.corp.example/v1"',
    "-c",
    'model_providers.corp.env_key="CORP_KEY"',
]


def make_spec(
    *,
    executor: dict[str, Any] | None = None,
    agent: dict[str, Any] | None = None,
    **fields: Any,
) -> RunSpec:
    return run_spec(ExecutorType.CODEX, executor=executor, agent=agent, **fields)


def invocation_of(spec: RunSpec, prompt: str = "Do the task.") -> Invocation:
    return CodexExecutor().command(spec, prompt)


def config_of(invocation: Invocation) -> dict[str, Any]:
    return tomllib.loads(invocation.files[CONFIG_FILE])


# -- the command line ------------------------------------------------------------------------


def test_executor_for_codex_is_a_fresh_codex_executor() -> None:
    first = executor_for(ExecutorType.CODEX)
    assert isinstance(first, CodexExecutor)
    assert executor_for(ExecutorType.CODEX) is not first


def test_argv_runs_codex_exec_with_json_in_the_worktree_and_reads_the_prompt_from_stdin() -> None:
    invocation = invocation_of(make_spec(), "Secret ticket text")

    assert invocation.argv == [
        "codex",
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--sandbox",
        "workspace-write",
        "--cd",
        "/work/tree",
        "--output-last-message",
        f"{CONTEXT}/{LAST_MESSAGE_FILE}",
        "-",
    ]
    assert invocation.stdin_text == "Secret ticket text"
    assert not any("Secret" in arg for arg in invocation.argv)


def test_base_executor_command_replaces_the_binary_and_extra_args_come_before_the_dash() -> None:
    spec = make_spec(
        executor={"command": ["/opt/codex/bin/codex"], "args": ["--enable", "web_search"]}
    )

    argv = invocation_of(spec).argv
    assert argv[0] == "/opt/codex/bin/codex"
    assert argv[-3:] == ["--enable", "web_search", "-"]


def test_model_flag_only_when_a_model_is_set() -> None:
    assert "--model" not in invocation_of(make_spec()).argv
    argv = invocation_of(make_spec(executor={"model": "gpt-5.5"})).argv
    assert argv[argv.index("--model") + 1] == "gpt-5.5"


@pytest.mark.parametrize(
    ("fields", "executor", "sandbox"),
    [
        ({}, {}, "workspace-write"),
        ({"kind": RunKind.REFINEMENT, "stage_spec": None}, {}, "read-only"),
        ({"sandboxed": True}, {}, "danger-full-access"),
        ({"sandboxed": True}, {"permission_mode": "workspace-write"}, "workspace-write"),
        (
            {"kind": RunKind.REFINEMENT},
            {"permission_mode": "danger-full-access"},
            "danger-full-access",
        ),
    ],
)
def test_sandbox_is_the_permission_mode_else_a_default_that_fits_where_the_run_is(
    fields: dict[str, Any], executor: dict[str, Any], sandbox: str
) -> None:
    argv = invocation_of(make_spec(executor=executor, **fields)).argv
    assert argv[argv.index("--sandbox") + 1] == sandbox


def test_max_retries_bound_a_custom_provider_before_the_users_own_settings() -> None:
    args = [*PROVIDER_ARGS, "-c", "model_providers.corp.stream_max_retries=7"]
    argv = invocation_of(make_spec(executor={"args": args, "max_retries": 1})).argv

    ours = argv.index("model_providers.corp.request_max_retries=1")
    assert argv[ours - 1] == "-c"
    assert "model_providers.corp.stream_max_retries=1" in argv
    # Codex applies `-c` in order: the user's own 7 comes later, so it wins.
    assert ours < argv.index("model_providers.corp.stream_max_retries=7")


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-c", 'model_provider="openai"'],
        ["-c", "model_provider=ollama"],
        ["-c", 'model_provider="with.dot"'],
    ],
)
def test_no_retry_settings_for_built_in_or_unselected_providers(args: list[str]) -> None:
    """Codex refuses to start when retry settings name a built-in provider."""
    argv = invocation_of(make_spec(executor={"args": args})).argv
    assert not any("max_retries" in arg for arg in argv)


@pytest.mark.parametrize(
    ("args", "provider"),
    [
        (["-c", 'model_provider="corp"'], "corp"),
        (["--config", "model_provider=corp"], "corp"),
        (["--config=model_provider='corp'"], "corp"),
        (["-cmodel_provider=corp"], "corp"),
        (["-c", "model_provider=a", "-c", "model_provider=b"], "b"),
        (["-c", "model=gpt-5.5"], None),
        (["-c"], None),
        (["-c", "model_provider=1"], None),
    ],
)
def test_the_selected_provider_is_read_as_codex_reads_config_arguments(
    args: list[str], provider: str | None
) -> None:
    assert selected_provider(args) == provider


def test_env_adds_agentfleet_variables_a_per_run_home_and_quiet_backtraces() -> None:
    invocation = invocation_of(make_spec(executor={"env": {"CORP_KEY": "k"}}))

    assert invocation.env == {
        "RUST_BACKTRACE": "0",
        "CORP_KEY": "k",
        "AGENTFLEET_CONTEXT_DIR": CONTEXT,
        "AGENTFLEET_RUN": "t1-dev-1",
        "AGENTFLEET_TASK": "t1",
        "AGENTFLEET_STAGE": "dev",
        "AGENTFLEET_ATTEMPT": "1",
        "AGENTFLEET_AGENT": "dev-agent",
        "CODEX_HOME": f"{CONTEXT}/codex",
    }


def test_the_config_may_turn_backtraces_back_on_but_not_move_the_home() -> None:
    env = {"RUST_BACKTRACE": "1", "CODEX_HOME": "/root/.codex"}
    invocation = invocation_of(make_spec(executor={"env": env}))

    assert invocation.env["RUST_BACKTRACE"] == "1"
    assert invocation.env["CODEX_HOME"] == f"{CONTEXT}/codex"


def test_config_toml_lives_in_the_home_and_bounds_retries_and_switches_off_phoning_home() -> None:
    invocation = invocation_of(make_spec())

    assert set(invocation.files) == {CONFIG_FILE}
    assert CONFIG_FILE == "codex/config.toml"
    config = config_of(invocation)
    assert config["features"] == {"unbounded_connection_retries": False}
    assert config["check_for_update_on_startup"] is False
    assert config["analytics"] == {"enabled": False}
    assert config["feedback"] == {"enabled": False}
    assert "mcp_servers" not in config


def test_agent_and_stage_instructions_become_developer_instructions() -> None:
    config = config_of(invocation_of(make_spec()))

    assert config["developer_instructions"] == (
        "# Agent instructions (dev-agent)\n\nWrite small, tested changes.\n\n"
        "# Stage instructions (dev)\n\nWrite hello.txt."
    )


def test_no_developer_instructions_without_instructions() -> None:
    spec = make_spec(agent={"specialized_instructions": ""}, stage_spec=None)
    assert "developer_instructions" not in config_of(invocation_of(spec))


def test_restrictions_switch_off_what_codex_can_switch_off() -> None:
    spec = make_spec(
        agent={"tool_restrictions": ["web_search", "shell", "view_image", "goals", "multi_agent"]}
    )

    config = config_of(invocation_of(spec))
    assert config["web_search"] == "disabled"
    assert config["features"] == {
        "unbounded_connection_retries": False,
        "shell_tool": False,
        "view_image": False,
        "goals": False,
        "multi_agent": False,
    }


def test_a_restricted_command_prefix_becomes_a_forbidden_execpolicy_rule() -> None:
    spec = make_spec(agent={"tool_restrictions": ["shell(git push)", "exec_command(rm -rf:*)"]})
    rules = invocation_of(spec).files[RULES_FILE]
    assert RULES_FILE == "codex/rules/agentfleet.rules"
    assert 'prefix_rule(pattern=["git", "push"], decision="forbidden"' in rules
    assert 'prefix_rule(pattern=["rm", "-rf"], decision="forbidden"' in rules


@pytest.mark.parametrize(
    ("rule", "complaint"),
    [
        ("apply_patch", "read-only"),
        ("WebFetch", "known: "),
        ("web_search(foo)", "only the shell"),
        ("shell()", "empty command prefix"),
        ('shell(echo "unbalanced)', "tool rule"),
        ('shell(echo "a b")', None),
        ("shell(echo a\\\\b)", "backslashes"),
        ("mcp:agentfleet", "mcp:<server>/<tool>"),
        ("two words", "expected a Codex tool name"),
    ],
)
def test_restrictions_codex_cannot_honour_are_refused_not_ignored(
    rule: str, complaint: str | None
) -> None:
    spec = make_spec(agent={"tool_restrictions": [rule]})
    if complaint is None:
        assert '["echo", "a b"]' in invocation_of(spec).files[RULES_FILE]
        return
    with pytest.raises(InvalidAgentConfigError, match=complaint.replace("(", r"\(")):
        invocation_of(spec)


def test_enabled_tools_are_checked_but_a_shell_prefix_is_refused_as_a_sandbox_escape() -> None:
    fine = make_spec(agent={"tools_enabled": ["shell", "web_search", "mcp:agentfleet/echo"]})
    assert "rules" not in " ".join(invocation_of(fine).files)

    with pytest.raises(InvalidAgentConfigError, match="outside its sandbox"):
        invocation_of(make_spec(agent={"tools_enabled": ["shell(pytest)"]}))
    with pytest.raises(InvalidAgentConfigError, match="not a Codex tool"):
        invocation_of(make_spec(agent={"tools_enabled": ["Read"]}))


def test_stdio_mcp_server_is_required_approved_and_gets_the_token_in_its_own_env() -> None:
    mcp = McpServer(command=["agentfleet", "mcp"], token="tok-123")
    spec = make_spec(mcp=mcp, agent={"tool_restrictions": ["mcp:agentfleet/delete_task"]})

    invocation = invocation_of(spec)
    server = config_of(invocation)["mcp_servers"]["agentfleet"]
    assert server == {
        "command": "agentfleet",
        "args": ["mcp"],
        "env": {MCP_TOKEN_VARIABLE: "tok-123"},
        "required": True,
        "startup_timeout_sec": 30,
        "default_tools_approval_mode": "approve",
        "disabled_tools": ["delete_task"],
    }
    assert not any("tok-123" in arg for arg in invocation.argv)
    assert not any("tok-123" in value for value in invocation.env.values())


def test_restricted_tools_of_an_mcp_server_from_the_args_are_disabled_after_those_args() -> None:
    args = ["-c", 'mcp_servers.github.command="gh-mcp"']
    restrictions = ["mcp:github/delete_repo", "mcp:github/push", "mcp:nowhere/x"]
    spec = make_spec(executor={"args": args}, agent={"tool_restrictions": restrictions})

    argv = invocation_of(spec).argv
    assert argv[-5:] == [
        *args,
        "-c",
        'mcp_servers.github.disabled_tools=["delete_repo", "push"]',
        "-",
    ]
    assert not any("nowhere" in arg for arg in argv)  # no such server: nothing to restrict


def test_http_mcp_server_sends_the_token_as_a_bearer_header() -> None:
    spec = make_spec(mcp=McpServer(name="fleet api", url="http://mcp:8080/mcp", token="t"))

    server = config_of(invocation_of(spec))["mcp_servers"]["fleet api"]
    assert server["url"] == "http://mcp:8080/mcp"
    assert server["http_headers"] == {"Authorization": "Bearer t"}
    assert "env" not in server


def test_an_mcp_server_with_neither_command_nor_url_is_left_out() -> None:
    assert "mcp_servers" not in config_of(invocation_of(make_spec(mcp=McpServer())))


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_any_text_survives_toml_as_one_string(value: str) -> None:
    """Surrogates have no TOML spelling: they come back as U+FFFD, everything else intact."""
    document = toml_document({"developer_instructions": value, "t": {"k": [value]}})
    expected = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    parsed = tomllib.loads(document)
    assert parsed == {"developer_instructions": expected, "t": {"k": [expected]}}


def test_toml_keys_that_are_not_bare_are_quoted() -> None:
    document = toml_document({"mcp_servers": {"fleet api": {"env": {"A.B": "x"}}}})
    assert tomllib.loads(document) == {"mcp_servers": {"fleet api": {"env": {"A.B": "x"}}}}
    assert toml_string('a"\\\x7f') == '"a\\"\\\\\\u007f"'


# -- the stream ------------------------------------------------------------------------------


def priced(pricing: dict[str, float] | None = None) -> CodexExecutor:
    """An executor that saw `command` for a spec (the pricing comes from there)."""
    parser = CodexExecutor()
    fields: dict[str, Any] = {"pricing": pricing} if pricing is not None else {}
    parser.command(make_spec(executor=fields), "Do it.")
    return parser


def replay(
    name: str, executor: CodexExecutor | None = None
) -> tuple[CodexExecutor, list[AgentEvent]]:
    parser = executor or CodexExecutor()
    events: list[AgentEvent] = []
    for line in (RECORDINGS / f"{name}.jsonl").read_text().splitlines():
        events.extend(parser.parse_line(line))
    return parser, events


def test_success_gives_reasoning_calls_results_patches_and_the_final_text() -> None:
    parser, events = replay("success_command")

    assert [(e.type.value, e.tool) for e in events] == [
        ("text", None),
        ("tool_call", "shell"),
        ("tool_result", "shell"),
        ("tool_call", "apply_patch"),
        ("tool_result", "apply_patch"),
        ("tool_call", "shell"),
        ("tool_result", "shell"),
        ("text", None),
        ("result", None),
    ]
    assert events[0].data == {"reasoning": True}
    assert events[1].text == "/bin/bash -lc \"printf 'hello\\\\n' > hello.txt\""
    assert events[1].data == {"id": "item_1", "command": events[1].text}
    assert events[2].data == {
        "id": "item_1",
        "exitCode": 0,
        "isError": False,
        "status": "completed",
    }
    assert events[4].data["changes"] == [{"path": "/work/tree/hello.txt", "kind": "update"}]
    assert events[4].text == "update /work/tree/hello.txt"
    assert events[4].data["isError"] is False
    failing = events[6]
    assert failing.data["exitCode"] == 2
    assert failing.data["isError"] is True
    assert "No such file or directory" in failing.text

    outcome = parser.finish(EXIT_CODES["success_command"])
    assert outcome.ok
    assert outcome.message == ""
    assert outcome.text == "Wrote hello.txt."
    assert events[-1].text == outcome.text
    first_line = (RECORDINGS / "success_command.jsonl").read_text().splitlines()[0]
    assert outcome.session_id == json.loads(first_line)["thread_id"]
    assert outcome.session_id


def test_cached_tokens_are_split_out_of_input_and_reasoning_stays_in_output() -> None:
    """turn.completed: input_tokens 3700 include 2400 cached; output_tokens 200 include
    the 60 reasoning tokens, so adding reasoning_output_tokens would count them twice."""
    parser, events = replay("success_command")

    outcome = parser.finish(0)
    assert outcome.tokens == TokenUsage(input=1300, output=200, cache_read=2400)
    assert events[-1].tokens == outcome.tokens
    assert outcome.cost_usd is None  # Codex reports no cost and no pricing is set


def test_cost_is_the_tokens_at_the_configured_pricing() -> None:
    parser, events = replay(
        "success_command", priced({"input": 1.0, "output": 10.0, "cacheRead": 0.1})
    )

    outcome = parser.finish(0)
    assert outcome.cost_usd == pytest.approx((1300 * 1.0 + 200 * 10.0 + 2400 * 0.1) / 1e6)
    assert events[-1].cost_usd == outcome.cost_usd


def test_usage_of_several_turns_adds_up_and_cache_writes_are_cache_creation() -> None:
    parser = CodexExecutor()
    usage = {
        "input_tokens": 1000,
        "cached_input_tokens": 600,
        "cache_write_input_tokens": 100,
        "output_tokens": 50,
        "reasoning_output_tokens": 10,
    }
    for _ in range(2):
        parser.parse_line(json.dumps({"type": "turn.completed", "usage": usage}))

    assert parser.finish(0).tokens == TokenUsage(
        input=600, output=100, cache_read=1200, cache_creation=200
    )


def test_auth_failure_retries_then_fails_naming_the_authentication_failure() -> None:
    parser, events = replay("auth_failure")

    retries = [e for e in events if e.type is LogEventType.RETRY]
    assert [(r.data["attempt"], r.data["maxRetries"]) for r in retries] == [(1, 2), (2, 2)]
    errors = [e for e in events if e.type is LogEventType.ERROR]
    assert len(errors) == 1
    assert "401 Unauthorized" in errors[0].text
    assert events[-1].type is LogEventType.RESULT
    assert events[-1].data["isError"] is True

    outcome = parser.finish(EXIT_CODES["auth_failure"])
    assert EXIT_CODES["auth_failure"] == 1
    assert not outcome.ok
    assert outcome.message.startswith("authentication failed: unexpected status 401")
    assert "CODEX_API_KEY" in outcome.message
    assert outcome.tokens is None
    assert outcome.text == ""


def test_a_killed_run_without_a_finished_turn_is_a_crash_naming_the_exit_code() -> None:
    parser, events = replay("crash")

    assert [e.type for e in events] == [LogEventType.TOOL_CALL]
    outcome = parser.finish(EXIT_CODES["crash"])
    assert EXIT_CODES["crash"] == 137
    assert not outcome.ok
    assert outcome.message == "codex exited 137 without finishing its turn (crashed or killed)"
    assert outcome.tokens is None
    assert outcome.cost_usd is None


def test_an_exit_before_any_thread_is_a_start_failure_not_a_crash() -> None:
    """A configuration error or a required MCP server that did not start: only stderr."""
    outcome = CodexExecutor().finish(1)
    assert not outcome.ok
    assert outcome.message == "codex exited 1 before it started a thread"


def test_no_finished_turn_fails_even_on_exit_0_and_names_the_last_error() -> None:
    parser = CodexExecutor()
    parser.parse_line('{"type":"thread.started","thread_id":"t"}')
    parser.parse_line('{"type":"error","message":"stream disconnected"}')

    outcome = parser.finish(0)
    assert not outcome.ok
    assert outcome.message.endswith("; last error: stream disconnected")


def test_mcp_calls_are_tool_calls_and_results_named_by_server_and_tool() -> None:
    _, events = replay("mcp_echo")

    call, result = events[0], events[1]
    assert (call.type, call.tool) == (LogEventType.TOOL_CALL, "mcp:agentfleet/echo")
    assert call.data["arguments"] == {"text": "ping"}
    assert (result.type, result.tool, result.text) == (
        LogEventType.TOOL_RESULT,
        "mcp:agentfleet/echo",
        "echo: ping",
    )
    assert result.data["isError"] is False


def test_a_failed_mcp_call_is_an_error_result_with_its_message() -> None:
    line = {
        "type": "item.completed",
        "item": {
            "id": "item_1",
            "type": "mcp_tool_call",
            "server": "agentfleet",
            "tool": "echo",
            "error": {"message": "MCP tool call requires approval, but approval policy is never"},
            "status": "failed",
        },
    }
    [event] = CodexExecutor().parse_line(json.dumps(line))
    assert event.data["isError"] is True
    assert event.text.startswith("MCP tool call requires approval")


def test_a_non_fatal_error_item_is_a_warning_not_a_failure() -> None:
    parser, events = replay("model_warning")

    warning = events[0]
    assert warning.type is LogEventType.TEXT
    assert warning.data == {"warning": True}
    assert "Model metadata for `scripted-model` not found" in warning.text
    assert parser.finish(EXIT_CODES["model_warning"]).ok


@pytest.mark.parametrize("name", sorted(EXIT_CODES))
def test_every_finished_recording_ends_in_exactly_one_result(name: str) -> None:
    _, events = replay(name)
    results = [e for e in events if e.type is LogEventType.RESULT]
    assert len(results) == (0 if name == "crash" else 1)


def test_the_last_turn_decides_success() -> None:
    completed = '{"type":"turn.completed","usage":{"input_tokens":1}}'
    failed = '{"type":"turn.failed","error":{"message":"boom"}}'
    parser = CodexExecutor()
    for line in (completed, failed):
        parser.parse_line(line)
    outcome = parser.finish(1)
    assert not outcome.ok
    assert outcome.message == "boom"

    parser = CodexExecutor()
    for line in (failed, completed):
        parser.parse_line(line)
    assert parser.finish(0).ok


def test_waiting_for_network_is_a_retry_without_counts() -> None:
    line = '{"type":"error","message":"Reconnecting... waiting for network (Connection failed)"}'
    [event] = CodexExecutor().parse_line(line)
    assert event.type is LogEventType.RETRY
    assert event.data == {"attempt": None, "maxRetries": None}


def test_long_command_output_is_cut() -> None:
    item = {
        "id": "item_1",
        "type": "command_execution",
        "command": "cat big",
        "aggregated_output": "x" * (TOOL_RESULT_LIMIT + 10),
        "exit_code": 0,
        "status": "completed",
    }
    [event] = CodexExecutor().parse_line(json.dumps({"type": "item.completed", "item": item}))
    assert event.text.endswith("... (10 more characters)")
    assert len(event.text) < TOOL_RESULT_LIMIT + 40


def test_todo_lists_are_text_with_checkboxes() -> None:
    item = {
        "id": "item_1",
        "type": "todo_list",
        "items": [{"text": "write", "completed": True}, {"text": "test", "completed": False}],
    }
    [event] = CodexExecutor().parse_line(json.dumps({"type": "item.completed", "item": item}))
    assert event.text == "- [x] write\n- [ ] test"
    assert event.data == {"todoList": True}


def test_non_json_stdout_is_text_from_stdout_and_blank_lines_are_nothing() -> None:
    parser = CodexExecutor()
    [event] = parser.parse_line("Reading additional input from stdin...")
    assert (event.type, event.text, event.data) == (
        LogEventType.TEXT,
        "Reading additional input from stdin...",
        {"stream": "stdout"},
    )
    assert parser.parse_line("   ") == []
    assert parser.parse_line('["not", "an", "object"]')[0].data == {"stream": "stdout"}


def test_lifecycle_and_unknown_events_are_not_events() -> None:
    parser = CodexExecutor()
    for line in (
        '{"type":"turn.started"}',
        '{"type":"item.updated","item":{"type":"todo_list","items":[]}}',
        '{"type":"item.completed","item":{"type":"hologram"}}',
        '{"type":"brand.new"}',
    ):
        assert parser.parse_line(line) == []


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=8,
)
TYPES = st.sampled_from(
    [
        "thread.started",
        "turn.started",
        "item.started",
        "item.updated",
        "item.completed",
        "turn.completed",
        "turn.failed",
        "error",
        "x",
    ]
)
ITEM_TYPES = st.sampled_from(
    [
        "agent_message",
        "reasoning",
        "command_execution",
        "file_change",
        "mcp_tool_call",
        "web_search",
        "todo_list",
        "error",
        "x",
    ]
)
ITEM_KEYS = st.sampled_from(
    [
        "id",
        "text",
        "command",
        "aggregated_output",
        "exit_code",
        "status",
        "changes",
        "server",
        "tool",
        "arguments",
        "result",
        "error",
        "query",
        "items",
        "message",
    ]
)
ITEMS = st.builds(
    lambda kind, fields: {"type": kind, **fields},
    ITEM_TYPES,
    st.dictionaries(ITEM_KEYS, JSON_VALUES, max_size=6),
)
USAGE = st.dictionaries(
    st.sampled_from(
        [
            "input_tokens",
            "cached_input_tokens",
            "cache_write_input_tokens",
            "output_tokens",
            "reasoning_output_tokens",
        ]
    ),
    JSON_VALUES,
    max_size=5,
)
STREAM_OBJECTS = st.builds(
    lambda kind, item, usage, fields: {"type": kind, "item": item, "usage": usage, **fields},
    TYPES,
    ITEMS | JSON_VALUES,
    USAGE | JSON_VALUES,
    st.dictionaries(st.sampled_from(["thread_id", "message", "error"]), JSON_VALUES, max_size=3),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(max_size=200) | JSON_VALUES.map(json.dumps), max_size=6))
def test_arbitrary_lines_never_raise(lines: list[str]) -> None:
    parser = CodexExecutor()
    for line in lines:
        parser.parse_line(line)
    parser.finish(1)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STREAM_OBJECTS, min_size=1, max_size=6), st.integers(0, 255))
def test_stream_shaped_objects_with_odd_fields_never_raise(
    objects: list[dict[str, Any]], exit_code: int
) -> None:
    parser = priced({"input": 1.0, "output": 2.0})
    for obj in objects:
        for event in parser.parse_line(json.dumps(obj)):
            assert isinstance(event.text, str)
            assert event.tool is None or isinstance(event.tool, str)
    outcome = parser.finish(exit_code)
    assert isinstance(outcome.text, str)
    if outcome.tokens is not None:
        assert outcome.cost_usd is not None
        assert outcome.cost_usd >= 0


# -- the scripted Responses API the recordings and runner tests use --------------------------


DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1, no proxy


def request(
    url: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with DIRECT.open(req, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def sse_events(payload: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in payload.splitlines() if line.startswith("data: ")]


def test_a_turn_streams_as_the_responses_api_does_and_ends_with_usage() -> None:
    usage = Usage(input_tokens=50, cached_input_tokens=10, output_tokens=5, reasoning_tokens=2)
    turns = [reply(reasoning("think"), function_call("exec_command", {"cmd": "ls"}), usage=usage)]
    with serve(turns) as server:
        status, payload = request(f"{server.base_url}/responses", {"model": "m", "stream": True})

    assert status == 200
    events = sse_events(payload)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.output_item.added",
        "response.output_item.done",
        "response.output_item.added",
        "response.output_item.done",
        "response.completed",
    ]
    call = events[4]["item"]
    assert (call["type"], call["name"], json.loads(call["arguments"])) == (
        "function_call",
        "exec_command",
        {"cmd": "ls"},
    )
    assert events[-1]["response"]["usage"] == {
        "input_tokens": 50,
        "input_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 0},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 55,
    }


def test_a_text_turn_streams_its_text_as_a_delta_and_a_finished_message() -> None:
    with serve([text("Hello.")]) as server:
        _, payload = request(f"{server.base_url}/responses", {"model": "m"})

    events = sse_events(payload)
    assert events[2] == {
        "type": "response.output_text.delta",
        "item_id": events[1]["item"]["id"],
        "output_index": 0,
        "content_index": 0,
        "delta": "Hello.",
    }
    assert events[3]["item"]["content"][0]["text"] == "Hello."


def test_an_http_error_repeats_and_an_exhausted_script_answers_400() -> None:
    with serve([http_error(401)]) as failing, serve([]) as empty:
        statuses = [request(f"{failing.base_url}/responses", {})[0] for _ in range(2)]
        exhausted = request(f"{empty.base_url}/responses", {})

    assert statuses == [401, 401]
    assert exhausted[0] == 400
    assert "no turn left" in exhausted[1]


def test_websocket_attempts_and_unknown_paths_are_refused_and_recorded() -> None:
    with serve([text("unused")]) as server:
        upgrade = request(f"{server.base_url}/responses", headers={"Upgrade": "websocket"})
        unknown = request(f"{server.base_url}/nothing", {})
        models = request(f"{server.base_url}/models")

    assert (upgrade[0], unknown[0], models[0]) == (426, 404, 200)
    assert [(r.method, r.path) for r in server.requests] == [
        ("GET", "/v1/responses"),
        ("POST", "/v1/nothing"),
        ("GET", "/v1/models"),
    ]
    assert server.model_requests == []


def test_recorded_requests_expose_tools_instructions_and_tool_outputs() -> None:
    body = {
        "tools": [
            {"type": "function", "name": "exec_command"},
            {"type": "web_search"},
            {"type": "namespace", "name": "mcp__x", "tools": [{"type": "function", "name": "a"}]},
        ],
        "input": [
            {"type": "additional_tools", "tools": [{"type": "custom", "name": "exec"}]},
            {"role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]},
            {"type": "function_call_output", "call_id": "c1", "output": "done"},
            {"type": "custom_tool_call_output", "call_id": "c2", "output": "patched"},
        ],
    }
    with serve([text("ok")]) as server:
        request(f"{server.base_url}/responses", body)

    [recorded] = server.model_requests
    assert recorded.tool_names() == ["exec_command", "web_search", "mcp__x.a", "exec"]
    assert recorded.developer_texts() == ["Be brief."]
    assert recorded.function_outputs() == ["done", "patched"]


def test_provider_args_select_the_server_and_leave_retries_to_the_executor() -> None:
    with serve([]) as server:
        args = codex_provider_args(server)
        bounded = codex_provider_args(server, stream_max_retries=0)

    assert selected_provider(args) == PROVIDER
    assert f'model_providers.{PROVIDER}.base_url="{server.base_url}"' in args
    assert not any("max_retries" in arg for arg in args)
    assert f"model_providers.{PROVIDER}.stream_max_retries=0" in bounded
    assert set(codex_provider_env()) == {API_KEY_ENV}
