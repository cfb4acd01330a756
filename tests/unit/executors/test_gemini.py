"""The Gemini CLI executor: its command line, its per-run home, and its parser on real output.

The parser tests replay stdout that the real `gemini` 0.61.0 printed against the scripted
Gemini API (`recordings/gemini/`, exit codes in `exit_codes.json`). Re-record them, after
a Gemini CLI upgrade for instance, with

    .venv/bin/python -m tests.support.model_servers.gemini record [SCENARIO ...]

then run this file: a failure is a change in the CLI's stream that the parser must follow.
"""

from __future__ import annotations

import json
import tomllib
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentfleet.executors import executor_for
from agentfleet.executors.base import AgentEvent, InvalidAgentConfigError, Invocation
from agentfleet.executors.gemini import (
    INSTRUCTIONS_FILE,
    POLICY_FILE,
    SESSION_NAMESPACE,
    SETTINGS_FILE,
    GeminiExecutor,
    auth_type,
    exit_code_meaning,
    session_id_for,
)
from agentfleet.executors.stream import TOOL_RESULT_LIMIT
from agentfleet.models.agent import ExecutorType
from agentfleet.models.log import LogEventType
from agentfleet.models.run import TokenUsage
from agentfleet.runner.spec import McpServer, RunSpec
from tests.support.model_servers.gemini import EXHAUSTED_TEXT, http_error, serve, text
from tests.unit.executors.specs import CONTEXT, run_spec

RECORDINGS = Path(__file__).parent / "recordings" / "gemini"
EXIT_CODES: dict[str, int] = json.loads((RECORDINGS / "exit_codes.json").read_text())


def make_spec(
    *,
    executor: dict[str, Any] | None = None,
    agent: dict[str, Any] | None = None,
    **fields: Any,
) -> RunSpec:
    return run_spec(ExecutorType.GEMINI, executor=executor, agent=agent, **fields)


def invocation_of(spec: RunSpec, prompt: str = "Do the task.") -> Invocation:
    return GeminiExecutor().command(spec, prompt)


def value_of(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def settings_of(invocation: Invocation) -> dict[str, Any]:
    settings: dict[str, Any] = json.loads(invocation.files[SETTINGS_FILE])
    return settings


def policy_rules(invocation: Invocation) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = tomllib.loads(invocation.files[POLICY_FILE])["rule"]
    return rules


# -- the command line ----------------------------------------------------------------------


def test_executor_for_gemini_is_a_fresh_gemini_executor() -> None:
    first = executor_for(ExecutorType.GEMINI)
    assert isinstance(first, GeminiExecutor)
    assert executor_for(ExecutorType.GEMINI) is not first


def test_argv_runs_gemini_headless_on_stdin_with_a_json_stream_in_a_trusted_folder() -> None:
    argv = invocation_of(make_spec()).argv

    assert argv[:7] == [
        "gemini",
        "-p",
        "",
        "--output-format",
        "stream-json",
        "--skip-trust",
        "--approval-mode",
    ]


def test_base_executor_command_replaces_the_binary() -> None:
    argv = invocation_of(make_spec(executor={"command": ["node", "/opt/gemini.js"]})).argv

    assert argv[:3] == ["node", "/opt/gemini.js", "-p"]


def test_the_prompt_goes_on_stdin_and_the_empty_p_adds_nothing_to_it() -> None:
    prompt = "# Task\n\nDo it; $(rm -rf /) is NOT a command here."
    invocation = invocation_of(make_spec(), prompt)

    assert invocation.stdin_text == prompt
    assert value_of(invocation.argv, "-p") == ""
    assert all(prompt not in arg for arg in invocation.argv)


def test_approval_mode_defaults_to_auto_edit_and_passes_the_configured_mode() -> None:
    assert value_of(invocation_of(make_spec()).argv, "--approval-mode") == "auto_edit"
    yolo = make_spec(executor={"permission_mode": "yolo"})
    assert value_of(invocation_of(yolo).argv, "--approval-mode") == "yolo"


def test_model_flag_only_when_a_model_is_set() -> None:
    assert "-m" not in invocation_of(make_spec()).argv
    argv = invocation_of(make_spec(executor={"model": "gemini-2.5-pro"})).argv
    assert value_of(argv, "-m") == "gemini-2.5-pro"


def test_session_id_is_a_uuid5_of_the_run_name_stable_across_builds() -> None:
    first = value_of(invocation_of(make_spec()).argv, "--session-id")

    assert first == value_of(invocation_of(make_spec()).argv, "--session-id")
    assert first == str(uuid.uuid5(SESSION_NAMESPACE, "t1-dev-1"))
    other = value_of(invocation_of(make_spec(name="t1-dev-2")).argv, "--session-id")
    assert other != first


def test_session_id_moves_on_when_the_home_already_holds_that_session(tmp_path: Path) -> None:
    home = tmp_path / "gemini"
    first = session_id_for("t1-dev-1", str(home))
    chats = home / ".gemini" / "tmp" / "tree" / "chats"
    chats.mkdir(parents=True)
    (chats / f"session-2026-11-25T05-52-{first[:8]}.jsonl").write_text("{}\n")

    again = session_id_for("t1-dev-1", str(home))

    assert again != first
    assert again == str(uuid.uuid5(SESSION_NAMESPACE, "t1-dev-1#1"))


def test_extra_args_come_last() -> None:
    argv = invocation_of(make_spec(executor={"args": ["--include-directories", "/data"]})).argv

    assert argv[-2:] == ["--include-directories", "/data"]
    assert argv.index("--session-id") < argv.index("--include-directories")


def test_env_adds_only_agentfleet_variables_and_the_per_run_home() -> None:
    spec = make_spec(executor={"env": {"GEMINI_API_KEY": "from-config"}})
    env = invocation_of(spec).env

    assert env["GEMINI_API_KEY"] == "from-config"
    assert env["AGENTFLEET_RUN"] == "t1-dev-1"
    assert env["GEMINI_CLI_HOME"] == f"{CONTEXT}/gemini"
    assert env["GEMINI_CLI_TRUST_WORKSPACE"] == "true"
    assert env["GEMINI_TELEMETRY_ENABLED"] == "false"
    assert env["GEMINI_CLI_NO_RELAUNCH"] == "true"
    assert "PATH" not in env  # the runner merges these over its own environment


def test_the_config_may_switch_telemetry_and_relaunch_back_on_but_not_move_the_home() -> None:
    spec = make_spec(
        executor={
            "env": {
                "GEMINI_TELEMETRY_ENABLED": "true",
                "GEMINI_CLI_NO_RELAUNCH": "",
                "GEMINI_CLI_HOME": "/elsewhere",
            }
        }
    )
    env = invocation_of(spec).env

    assert env["GEMINI_TELEMETRY_ENABLED"] == "true"
    assert env["GEMINI_CLI_NO_RELAUNCH"] == ""
    assert env["GEMINI_CLI_HOME"] == f"{CONTEXT}/gemini"


def test_settings_live_in_the_home_the_cli_reads_and_switch_off_phoning_home() -> None:
    invocation = invocation_of(make_spec())
    settings = settings_of(invocation)

    assert SETTINGS_FILE == "gemini/.gemini/settings.json"  # <GEMINI_CLI_HOME>/.gemini/
    assert settings["privacy"] == {"usageStatisticsEnabled": False}
    assert settings["telemetry"] == {"enabled": False}
    assert settings["general"]["enableAutoUpdate"] is False
    assert settings["general"]["enableAutoUpdateNotification"] is False


def test_auth_type_is_the_api_key_even_with_a_custom_base_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:1")
    monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
    monkeypatch.delenv("GOOGLE_GENAI_USE_GCA", raising=False)
    monkeypatch.delenv("GEMINI_CLI_USE_COMPUTE_ADC", raising=False)

    selected = settings_of(invocation_of(make_spec()))["security"]["auth"]["selectedType"]

    assert selected == "gemini-api-key"


def test_auth_type_follows_vertex_and_google_login_switches_in_env_or_config() -> None:
    assert auth_type({"GOOGLE_GENAI_USE_VERTEXAI": "true"}) == "vertex-ai"
    assert auth_type({"GOOGLE_GENAI_USE_GCA": "true"}) == "oauth-personal"
    assert auth_type({"GEMINI_CLI_USE_COMPUTE_ADC": "true"}) == "compute-default-credentials"
    assert auth_type({"GEMINI_API_KEY": "k"}) == "gemini-api-key"
    spec = make_spec(executor={"env": {"GOOGLE_GENAI_USE_VERTEXAI": "true"}})
    assert settings_of(invocation_of(spec))["security"]["auth"]["selectedType"] == "vertex-ai"


def test_max_retries_bound_the_cli_attempts_at_its_own_ceiling_of_ten() -> None:
    def attempts(retries: int) -> int:
        spec = make_spec(executor={"max_retries": retries})
        value: int = settings_of(invocation_of(spec))["general"]["maxAttempts"]
        return value

    assert attempts(0) == 1
    assert attempts(2) == 3
    assert attempts(50) == 10


def test_max_turns_becomes_max_session_turns_only_when_set() -> None:
    assert "model" not in settings_of(invocation_of(make_spec()))
    spec = make_spec(executor={"max_turns": 7})
    assert settings_of(invocation_of(spec))["model"] == {"maxSessionTurns": 7}


def test_restrictions_deny_and_enabled_tools_allow_in_a_user_tier_policy() -> None:
    spec = make_spec(
        agent={
            "tool_restrictions": ["google_web_search", "run_shell_command(rm)"],
            "tools_enabled": ["run_shell_command(python -m pytest)", "write_file"],
        }
    )
    invocation = invocation_of(spec)

    assert POLICY_FILE == "gemini/.gemini/policies/agentfleet.toml"
    rules = policy_rules(invocation)
    assert [(r["toolName"], r.get("commandPrefix"), r["decision"]) for r in rules] == [
        ("google_web_search", None, "deny"),
        ("run_shell_command", "rm", "deny"),
        ("run_shell_command", "python -m pytest", "allow"),
        ("write_file", None, "allow"),
    ]
    deny, allow = rules[0]["priority"], rules[2]["priority"]
    assert 0 <= allow < deny <= 999  # a restriction beats an enabled tool
    assert "toolRestrictions" in rules[0]["denyMessage"]
    assert "tools" not in settings_of(invocation)  # no deprecated tools.exclude/allowed


def test_claude_style_wildcards_in_a_shell_rule_become_the_prefix_before_them() -> None:
    spec = make_spec(agent={"tool_restrictions": ["run_shell_command(git push:*)"]})

    assert policy_rules(invocation_of(spec))[0]["commandPrefix"] == "git push"


def test_quotes_backslashes_and_control_characters_stay_one_toml_string() -> None:
    prefix = 'echo "x\\y\x7f\té'
    spec = make_spec(agent={"tool_restrictions": [f"run_shell_command({prefix})"]})

    assert policy_rules(invocation_of(spec))[0]["commandPrefix"] == prefix


def test_no_policy_file_without_tool_rules() -> None:
    assert POLICY_FILE not in invocation_of(make_spec()).files


def test_argument_rules_on_tools_other_than_the_shell_are_refused() -> None:
    spec = make_spec(agent={"tool_restrictions": ["write_file(/etc)"]})

    with pytest.raises(InvalidAgentConfigError, match="run_shell_command"):
        invocation_of(spec)


def test_agent_and_stage_instructions_are_appended_to_the_system_prompt_via_gemini_md() -> None:
    files = invocation_of(make_spec()).files

    assert INSTRUCTIONS_FILE == "gemini/.gemini/GEMINI.md"  # the CLI's global context file
    text = files[INSTRUCTIONS_FILE]
    assert "# Agent instructions (dev-agent)\n\nWrite small, tested changes." in text
    assert "# Stage instructions (dev)\n\nWrite hello.txt." in text


def test_no_gemini_md_without_instructions() -> None:
    spec = make_spec(agent={"specialized_instructions": ""}, stage_spec=None)

    assert INSTRUCTIONS_FILE not in invocation_of(spec).files


def test_http_mcp_server_is_trusted_and_sends_the_token_as_a_bearer_header() -> None:
    mcp = McpServer(name="agent_fleet", url="http://mcp.local/mcp", token="s3cret")
    invocation = invocation_of(make_spec(mcp=mcp))

    servers = settings_of(invocation)["mcpServers"]
    assert servers == {
        "agent-fleet": {  # the policy engine splits mcp_<alias>_<tool> at underscores
            "httpUrl": "http://mcp.local/mcp",
            "headers": {"Authorization": "Bearer s3cret"},
            "trust": True,
        }
    }
    assert all("s3cret" not in arg for arg in invocation.argv)
    assert "s3cret" not in json.dumps(invocation.env)


def test_stdio_mcp_server_gets_its_token_in_its_own_environment() -> None:
    mcp = McpServer(command=["agentfleet", "mcp"], token="s3cret")

    servers = settings_of(invocation_of(make_spec(mcp=mcp)))["mcpServers"]

    assert servers == {
        "agentfleet": {
            "command": "agentfleet",
            "args": ["mcp"],
            "env": {"AGENTFLEET_MCP_TOKEN": "s3cret"},
            "trust": True,
        }
    }


def test_no_mcp_servers_without_an_mcp_server() -> None:
    assert "mcpServers" not in settings_of(invocation_of(make_spec()))


# -- the parser on recorded CLI output -----------------------------------------------------


def replay(
    name: str, executor: GeminiExecutor | None = None
) -> tuple[GeminiExecutor, list[AgentEvent]]:
    parser = executor or GeminiExecutor()
    events: list[AgentEvent] = []
    for line in (RECORDINGS / f"{name}.jsonl").read_text().splitlines():
        events.extend(parser.parse_line(line))
    return parser, events


def priced(pricing: dict[str, float] | None = None, **executor: Any) -> GeminiExecutor:
    """An executor that saw `command` for a spec (pricing and max turns come from there)."""
    parser = GeminiExecutor()
    fields: dict[str, Any] = dict(executor)
    if pricing is not None:
        fields["pricing"] = pricing
    parser.command(make_spec(executor=fields), "Do it.")
    return parser


def test_success_with_tools_gives_calls_results_text_and_tokens_counted_once() -> None:
    parser, events = replay("success_shell")

    kinds = [e.type for e in events]
    assert kinds.count(LogEventType.TOOL_CALL) == 3
    assert kinds.count(LogEventType.TOOL_RESULT) == 3
    assert kinds[-1] is LogEventType.RESULT
    calls = [e for e in events if e.type is LogEventType.TOOL_CALL]
    assert [c.tool for c in calls] == ["write_file", "run_shell_command", "run_shell_command"]
    assert calls[1].data["input"]["command"] == "cat hello.txt"
    results = [e for e in events if e.type is LogEventType.TOOL_RESULT]
    assert [r.tool for r in results] == [c.tool for c in calls]  # looked up by tool_id
    assert [r.data["id"] for r in results] == [c.data["id"] for c in calls]
    assert results[1].text == "hello"
    assert results[1].data["isError"] is False
    texts = [e.text for e in events if e.type is LogEventType.TEXT]
    assert texts == ["I will writ", "e the file.", "Wrote hello.txt", "; it says hello."]

    outcome = parser.finish(EXIT_CODES["success_shell"])
    assert outcome.ok
    assert outcome.text == "Wrote hello.txt; it says hello."  # the last message, whole
    # input_tokens 4200 include 200 cached; 7 thinking tokens are only in total_tokens.
    assert outcome.tokens == TokenUsage(input=4000, output=97, cache_read=200)
    assert events[-1].tokens == outcome.tokens
    assert outcome.cost_usd is None  # Gemini reports no cost and no pricing is set
    assert outcome.session_id == str(uuid.uuid5(SESSION_NAMESPACE, "rec-dev-1"))


def test_a_restricted_shell_command_is_a_failed_tool_result_naming_the_policy() -> None:
    _, events = replay("success_shell")

    denied = [e for e in events if e.type is LogEventType.TOOL_RESULT][2]
    assert denied.data["isError"] is True
    assert denied.data["error"]["type"] == "policy_violation"
    assert "toolRestrictions" in denied.text


def test_cost_is_the_tokens_at_the_configured_pricing() -> None:
    parser, events = replay(
        "success_shell", priced({"input": 1.0, "output": 10.0, "cacheRead": 0.25})
    )

    outcome = parser.finish(0)
    expected = (4000 * 1.0 + 97 * 10.0 + 200 * 0.25) / 1_000_000
    assert outcome.cost_usd == pytest.approx(expected)
    assert events[-1].cost_usd == outcome.cost_usd


def test_turn_limit_fails_with_a_message_naming_the_limit_and_the_exit_code() -> None:
    parser, events = replay("turn_limit", priced(max_turns=1))

    outcome = parser.finish(EXIT_CODES["turn_limit"])
    assert EXIT_CODES["turn_limit"] == 53
    assert not outcome.ok
    assert outcome.message.startswith("reached max turns (1)")
    assert "turn limit" in outcome.message
    assert events[-1].type is LogEventType.RESULT
    assert events[-1].data["isError"] is True
    assert outcome.tokens == TokenUsage(input=1000, output=20)


def test_auth_failure_fails_with_the_api_error_and_the_http_status_behind_the_exit() -> None:
    parser, events = replay("auth_failure")

    outcome = parser.finish(EXIT_CODES["auth_failure"])
    assert EXIT_CODES["auth_failure"] == 145  # 401 mod 256
    assert not outcome.ok
    assert "API key not valid" in outcome.message
    assert "HTTP 401" in outcome.message
    assert "API key not valid" in events[-1].text


def test_server_error_after_the_last_attempt_fails_naming_it() -> None:
    parser, _ = replay("server_error")

    outcome = parser.finish(EXIT_CODES["server_error"])
    assert not outcome.ok
    assert "overloaded" in outcome.message
    assert "HTTP 503" in outcome.message


@pytest.mark.parametrize("name", sorted(EXIT_CODES))
def test_every_recording_parses_into_exactly_one_final_result(name: str) -> None:
    parser, events = replay(name)

    results = [e for e in events if e.type is LogEventType.RESULT]
    assert len(results) == 1
    assert events[-1] is results[0]
    outcome = parser.finish(EXIT_CODES[name])
    assert outcome.ok is (EXIT_CODES[name] == 0)
    assert outcome.tokens is not None
    assert outcome.session_id is not None


# -- the parser on hand-written lines ------------------------------------------------------


def test_no_result_and_a_known_exit_code_is_a_crash_saying_what_the_code_means() -> None:
    parser = GeminiExecutor()
    parser.parse_line('{"type":"init","session_id":"s1","model":"gemini-2.5-flash"}')

    outcome = parser.finish(41)

    assert not outcome.ok
    assert outcome.tokens is None
    assert outcome.message == (
        "gemini ended without a final result "
        "(exit 41: authentication failed or no auth method configured)"
    )
    assert outcome.session_id == "s1"


def test_no_result_fails_even_when_gemini_exits_0() -> None:
    outcome = GeminiExecutor().finish(0)

    assert not outcome.ok
    assert "without a final result (exit 0)" in outcome.message


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        (42, "input"),
        (44, "sandbox"),
        (52, "configuration"),
        (53, "turn limit"),
        (54, "tool"),
        (55, "not trusted"),
        (130, "cancelled"),
        (147, "HTTP 403"),
        (173, "HTTP 429"),
    ],
)
def test_exit_codes_are_explained(code: int, meaning: str) -> None:
    assert meaning in exit_code_meaning(code)


def test_an_unknown_exit_code_is_not_explained() -> None:
    assert exit_code_meaning(137) == ""


def test_non_json_stdout_is_text_from_stdout() -> None:
    events = GeminiExecutor().parse_line("Loaded cached credentials.")

    assert events == [
        AgentEvent(
            type=LogEventType.TEXT, text="Loaded cached credentials.", data={"stream": "stdout"}
        )
    ]


def test_user_messages_init_and_unknown_types_are_not_events() -> None:
    parser = GeminiExecutor()
    lines = [
        '{"type":"init","session_id":"s1","model":"m"}',
        '{"type":"message","role":"user","content":"the prompt"}',
        '{"type":"thought","content":"hmm"}',
        '{"type":"message","role":"assistant"}',
        "",
    ]
    assert [e for line in lines for e in parser.parse_line(line)] == []


def test_error_events_keep_their_severity() -> None:
    parser = GeminiExecutor()
    warning = parser.parse_line(
        '{"type":"error","severity":"warning","message":"Loop detected, stopping execution"}'
    )

    assert warning == [
        AgentEvent(
            type=LogEventType.ERROR,
            text="Loop detected, stopping execution",
            data={"severity": "warning"},
        )
    ]


def test_turn_limit_error_event_fails_a_result_that_says_success() -> None:
    parser = GeminiExecutor()
    parser.parse_line(
        '{"type":"error","severity":"error","message":"Maximum session turns exceeded"}'
    )
    parser.parse_line('{"type":"result","status":"success","stats":{}}')

    outcome = parser.finish(0)

    assert not outcome.ok
    assert outcome.message.startswith("reached max turns")


def test_an_error_result_without_details_is_explained_by_the_error_event_before_it() -> None:
    parser = GeminiExecutor()
    parser.parse_line(
        '{"type":"error","severity":"error","message":"Model stream ended with empty response."}'
    )
    parser.parse_line('{"type":"result","status":"error","stats":{}}')

    outcome = parser.finish(0)

    assert not outcome.ok
    assert outcome.message == "Model stream ended with empty response."


def test_final_text_is_the_last_message_not_the_narration_before_tool_calls() -> None:
    parser = GeminiExecutor()
    for line in [
        '{"type":"message","role":"assistant","content":"Let me look.","delta":true}',
        '{"type":"tool_use","tool_name":"glob","tool_id":"g1","parameters":{"pattern":"*"}}',
        '{"type":"tool_result","tool_id":"g1","status":"success","output":"a.txt"}',
        '{"type":"message","role":"assistant","content":"[{\\"title\\":","delta":true}',
        '{"type":"message","role":"assistant","content":" \\"x\\"}]","delta":true}',
        '{"type":"tool_use","tool_name":"update_topic","tool_id":"u1","parameters":{}}',
        '{"type":"tool_result","tool_id":"u1","status":"success"}',
        '{"type":"result","status":"success","stats":{}}',
    ]:
        parser.parse_line(line)

    assert parser.finish(0).text == '[{"title": "x"}]'


def test_long_tool_output_is_cut_and_an_error_without_output_gives_its_message() -> None:
    parser = GeminiExecutor()
    parser.parse_line('{"type":"tool_use","tool_name":"read_file","tool_id":"r1"}')
    long = parser.parse_line(
        json.dumps({"type": "tool_result", "tool_id": "r1", "output": "x" * 10_000})
    )[0]
    failed = parser.parse_line(
        '{"type":"tool_result","tool_id":"r2","status":"error",'
        '"error":{"type":"file_not_found","message":"File not found: a.txt"}}'
    )[0]

    assert long.text.startswith("x" * TOOL_RESULT_LIMIT)
    assert long.text.endswith(f"({10_000 - TOOL_RESULT_LIMIT} more characters)")
    assert long.tool == "read_file"
    assert (failed.text, failed.tool, failed.data["isError"]) == (
        "File not found: a.txt",
        None,  # no tool_use seen for r2
        True,
    )


def test_stats_without_the_uncached_count_subtract_the_cached_part() -> None:
    parser = GeminiExecutor()
    parser.parse_line(
        '{"type":"result","status":"success","stats":'
        '{"total_tokens":1230,"input_tokens":1200,"output_tokens":30,"cached":200}}'
    )

    assert parser.finish(0).tokens == TokenUsage(input=1000, output=30, cache_read=200)


# -- odd input never raises ----------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=8,
)
TYPES = st.sampled_from(["init", "message", "tool_use", "tool_result", "error", "result", "x"])
KEYS = st.sampled_from(
    [
        "role",
        "content",
        "delta",
        "tool_name",
        "tool_id",
        "parameters",
        "status",
        "output",
        "error",
        "severity",
        "message",
        "stats",
        "session_id",
        "model",
    ]
)
STATS = st.dictionaries(
    st.sampled_from(["total_tokens", "input_tokens", "output_tokens", "cached", "input"]),
    JSON_VALUES,
    max_size=5,
)
STREAM_OBJECTS = st.builds(
    lambda kind, fields, stats: {"type": kind, **fields, "stats": stats},
    TYPES,
    st.dictionaries(KEYS, JSON_VALUES, max_size=6),
    STATS | JSON_VALUES,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(max_size=200) | JSON_VALUES.map(json.dumps), max_size=6))
def test_arbitrary_lines_never_raise(lines: list[str]) -> None:
    parser = GeminiExecutor()
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
    outcome = parser.finish(exit_code)
    assert isinstance(outcome.text, str)
    if outcome.tokens is not None:
        assert outcome.cost_usd is not None
        assert outcome.cost_usd >= 0


# -- the scripted Gemini API the recordings and runner tests use ---------------------------


DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1, no proxy


def post(url: str, body: dict[str, Any]) -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with DIRECT.open(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def sse_chunks(payload: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in payload.splitlines() if line.startswith("data: ")]


MAIN_BODY = {
    "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
    "tools": [{"functionDeclarations": [{"name": "read_file"}]}],
}


def test_side_questions_get_schema_shaped_json_and_never_take_a_scripted_turn() -> None:
    router = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {
            "responseMimeType": "application/json",
            "responseJsonSchema": {
                "type": "OBJECT",
                "properties": {
                    "complexity_reasoning": {"type": "STRING"},
                    "complexity_score": {"type": "INTEGER"},
                },
                "required": ["complexity_reasoning", "complexity_score"],
            },
        },
    }
    with serve([text("first turn")]) as server:
        models = f"{server.base_url}/v1beta/models"
        status, side = post(f"{models}/gemini-3.5-flash-lite:generateContent", router)
        _, main = post(f"{models}/gemini-2.5-flash:streamGenerateContent?alt=sse", MAIN_BODY)

    assert status == 200
    answer = json.loads(side)["candidates"][0]["content"]["parts"][0]["text"]
    assert json.loads(answer) == {"complexity_reasoning": "", "complexity_score": 1}
    deltas = [c["candidates"][0]["content"]["parts"][0]["text"] for c in sse_chunks(main)]
    assert "".join(deltas) == "first turn"
    assert [r.main for r in server.requests] == [False, True]
    assert server.main_requests[0].function_names() == ["read_file"]
    assert not server.exhausted


def test_a_scripted_error_repeats_unless_limited_and_an_empty_script_says_so() -> None:
    url_path = "/v1beta/models/m:streamGenerateContent?alt=sse"
    with serve([http_error(503, "busy", times=1), http_error(401)]) as server:
        codes = [post(server.base_url + url_path, MAIN_BODY)[0] for _ in range(3)]
    assert codes == [503, 401, 401]

    with serve([]) as server:
        _, body = post(server.base_url + url_path, MAIN_BODY)
    assert server.exhausted
    assert EXHAUSTED_TEXT in "".join(
        c["candidates"][0]["content"]["parts"][0]["text"] for c in sse_chunks(body)
    )


@pytest.mark.parametrize(
    ("line", "data"),
    [
        (
            "Attempt 2 failed with status 503. Retrying with backoff...",
            {"attempt": 2, "status": 503},
        ),
        ("Attempt 1 failed. Retrying with backoff... TypeError: fetch failed", {"attempt": 1}),
    ],
)
def test_a_retry_reported_on_stderr_becomes_a_retry_event(line: str, data: dict[str, int]) -> None:
    [event] = GeminiExecutor().parse_stderr_line(line)

    assert event.type is LogEventType.RETRY
    assert event.data == data


def test_other_stderr_lines_are_no_events() -> None:
    assert GeminiExecutor().parse_stderr_line("Ripgrep is not available.") == []
