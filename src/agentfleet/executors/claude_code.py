"""The Claude Code executor: `claude -p --output-format stream-json` and its JSONL stream.

The contract it relies on was observed on Claude Code 2.1.331 (`shared/AGENT_CLIS.md`, and
the recordings in `tests/unit/executors/recordings/claude_code/`):

* The prompt goes on stdin. `--allowedTools`, `--disallowedTools` and `--mcp-config` are
  variadic and would swallow a positional prompt, and anything from `baseExecutor.args`
  that followed them, so they come first and plain flags close them.
* Success is the final `result` line's `is_error`, never its `subtype`: an authentication
  failure ends as `subtype: success, is_error: true`. A run that prints no result (killed,
  crashed) has failed whatever its exit code.
* A session can print more than one `result` (a background sub-agent's hand-back starts a
  new turn); the totals in each are cumulative, so the last one describes the session.
* `--json-schema` is a synthetic `StructuredOutput` tool offered to the model. The CLI ends
  the run as soon as the model calls it and reports the input as `structured_output`; a
  model that never calls it gets one reminder, then the run "succeeds" without it, which
  this executor reports as a failure.
* Claude Code refuses `bypassPermissions` as root unless `IS_SANDBOX=1`; that is only true
  inside a Pod made for the run, so anywhere else the config is rejected before the start.
"""

from __future__ import annotations

import json
import math
import os
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..models.log import LogEventType
from ..models.run import RunKind, TokenUsage
from .base import (
    AgentEvent,
    ExecutorOutcome,
    InvalidAgentConfigError,
    Invocation,
    cli_argv,
    run_environment,
)
from .stream import as_dict, as_int, as_list, as_str, json_object, plain_line, truncate

if TYPE_CHECKING:
    from ..runner.spec import McpServer, RunSpec

SESSION_NAMESPACE = uuid.UUID("5d0c3f8e-9a51-4c62-8f0e-2b7d6a1e4c93")
"""uuid5 namespace of session ids: the same run name always gives the same session id, so a
run's transcript (`<CLAUDE_CONFIG_DIR>/projects/.../<session>.jsonl`) can be found from it."""

DEFAULT_PERMISSION_MODE = "acceptEdits"
BYPASS_MODE = "bypassPermissions"
MCP_CONFIG_FILE = "mcp.json"
CONFIG_DIR = "claude"
"""Characters of a tool's output kept in its event: enough to see what happened, small
enough that a `cat` of a large file does not bloat the run's log."""

STRUCTURED_OUTPUT_TOOL = "StructuredOutput"
MCP_TOKEN_VARIABLE = "AGENTFLEET_MCP_TOKEN"

_MAX_TURNS = re.compile(r"\((\d+)\)")


def session_id_for(run_name: str, config_dir: str | None = None) -> str:
    """uuid5 of the run name, or of `name#n` when `config_dir` already has that session.

    Claude Code refuses a session id it has a transcript for ("already in use"); that
    happens when the same run starts again with the same context dir (a Pod started again).
    """
    taken: set[str] = set()
    if config_dir is not None:
        taken = {path.stem for path in Path(config_dir, "projects").glob("*/*.jsonl")}
    candidate, n = str(uuid.uuid5(SESSION_NAMESPACE, run_name)), 0
    while candidate in taken:
        n += 1
        candidate = str(uuid.uuid5(SESSION_NAMESPACE, f"{run_name}#{n}"))
    return candidate


def _tool_names(rules: list[str], sub_agents: bool) -> list[str]:
    """The built-in tools behind allow rules (`Bash(git *)` is Bash), for `--tools`.

    MCP tools (`mcp__...`) are not built-ins; sub-agents need the Agent tool.
    """
    names: list[str] = []
    for rule in rules:
        name = rule.split("(", 1)[0].strip()
        if name and not name.startswith("mcp__") and name not in names:
            names.append(name)
    if names and sub_agents and "Agent" not in names and "Task" not in names:
        names.append("Agent")
    return names


def _system_prompt(spec: RunSpec) -> str:
    """Appended to Claude Code's own system prompt: who the agent is, what the stage asks.

    The same texts are in the prompt on stdin; in the system prompt they outlive context
    compaction and weigh as instructions rather than as a message.
    """
    parts = []
    agent = spec.agent.specialized_instructions.strip()
    if agent:
        parts.append(f"# Agent instructions ({spec.agent_name})\n\n{agent}")
    stage = spec.stage_spec.instructions.strip() if spec.stage_spec else ""
    if stage:
        parts.append(f"# Stage instructions ({spec.stage})\n\n{stage}")
    return "\n\n".join(parts)


def _agents_json(spec: RunSpec) -> str | None:
    """`--agents`: each sub-agent as Claude Code's AgentDefinition (description and prompt
    are required there, so neither is ever left empty)."""
    if not spec.agent.sub_agents:
        return None
    agents: dict[str, dict[str, Any]] = {}
    for name, sub in spec.agent.sub_agents.items():
        description = sub.description.strip() or f"{sub.agent_type.value} sub-agent"
        definition: dict[str, Any] = {
            "description": description,
            "prompt": sub.specialized_prompt.strip() or description,
        }
        if sub.tools:
            definition["tools"] = list(sub.tools)
        if sub.tool_restrictions:
            definition["disallowedTools"] = list(sub.tool_restrictions)
        if sub.model:
            definition["model"] = sub.model
        agents[name] = definition
    return json.dumps(agents, ensure_ascii=False, separators=(",", ":"))


def _mcp_config(mcp: McpServer) -> dict[str, Any] | None:
    """The `--mcp-config` file; the token lives only here (mode 0600), never in argv."""
    server: dict[str, Any]
    if mcp.command:
        server = {"type": "stdio", "command": mcp.command[0], "args": list(mcp.command[1:])}
        if mcp.token:
            server["env"] = {MCP_TOKEN_VARIABLE: mcp.token}
    elif mcp.url:
        server = {"type": "http", "url": mcp.url}
        if mcp.token:
            server["headers"] = {"Authorization": f"Bearer {mcp.token}"}
    else:
        return None
    return {"mcpServers": {mcp.name: server}}


def _json_schema(spec: RunSpec) -> str | None:
    if spec.kind is not RunKind.REFINEMENT:
        return None
    from ..refine.schema import refinement_schema  # only refinement runs need pydantic's schema

    schema = refinement_schema()
    # Claude Code's validator knows draft-07 only: a 2020-12 `$schema` fails the start with
    # `no schema with key or ref "https://json-schema.org/draft/2020-12/schema"`.
    schema.pop("$schema", None)
    return json.dumps(schema, ensure_ascii=False, separators=(",", ":"))


def _check_bypass(spec: RunSpec, mode: str, env: dict[str, str]) -> None:
    """Claude Code exits at once on bypass as root; say why and what to do instead."""
    if mode != BYPASS_MODE or os.geteuid() != 0:
        return
    if spec.sandboxed:
        env["IS_SANDBOX"] = "1"  # a Pod made for this run: what the guard exists to allow
        return
    raise InvalidAgentConfigError(
        "Claude Code refuses permissionMode bypassPermissions as root outside a sandbox. "
        "Run agentfleet as a non-root user, or use permissionMode acceptEdits with "
        'toolsEnabled listing what the agent may run (e.g. "Bash(pytest *)", "Edit", "Write").'
    )


def _check_rules(rules: list[str]) -> None:
    """A rule that starts with `-` would be read as an option and end the rule list there."""
    for rule in rules:
        if rule.startswith("-"):
            raise InvalidAgentConfigError(
                f"tool rule {rule!r} starts with '-', which Claude Code would read as an "
                'option; rules look like Edit or "Bash(git *)"'
            )


def _tokens(result: dict[str, Any]) -> TokenUsage | None:
    """The session's tokens: `modelUsage` (every model, sub-agents included) when present,
    else `usage` (the main loop only)."""
    models = [m for m in as_dict(result.get("modelUsage")).values() if isinstance(m, dict)]
    if models:
        return TokenUsage(
            input=sum(as_int(m.get("inputTokens")) for m in models),
            output=sum(as_int(m.get("outputTokens")) for m in models),
            cache_read=sum(as_int(m.get("cacheReadInputTokens")) for m in models),
            cache_creation=sum(as_int(m.get("cacheCreationInputTokens")) for m in models),
        )
    usage = result.get("usage")
    if not isinstance(usage, dict):
        return None
    return TokenUsage(
        input=as_int(usage.get("input_tokens")),
        output=as_int(usage.get("output_tokens")),
        cache_read=as_int(usage.get("cache_read_input_tokens")),
        cache_creation=as_int(usage.get("cache_creation_input_tokens")),
    )


def _cost(result: dict[str, Any]) -> float | None:
    cost = result.get("total_cost_usd")
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        value = float(cost)
        if math.isfinite(value) and value >= 0:
            return value
    return None


def _content_text(content: object) -> str:
    """A tool_result's content: a string, or a list of blocks of which the text counts."""
    if isinstance(content, str):
        return content
    texts = [as_str(b.get("text")) for b in as_list(content) if isinstance(b, dict)]
    return "\n".join(t for t in texts if t)


class ClaudeCodeExecutor:
    """One run of Claude Code: builds its command line, then reads its stream-json."""

    def __init__(self) -> None:
        self._tool_names: dict[str, str] = {}
        self._result: dict[str, Any] | None = None
        self._api_error: tuple[str, str] | None = None
        self._session_id: str | None = None
        self._model: str | None = None
        self._max_turns: int | None = None
        self._wants_structured = False

    # -- the command line ------------------------------------------------------------------

    def command(self, spec: RunSpec, prompt: str) -> Invocation:
        base = spec.agent.base_executor
        mode = base.permission_mode or DEFAULT_PERMISSION_MODE
        env = {
            **base.env,
            **run_environment(spec),
            "CLAUDE_CONFIG_DIR": os.path.join(spec.context_dir, CONFIG_DIR),
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_RETRIES": str(base.max_retries),
            "CLAUDE_CODE_STARTUP_FAILURE_RESULTS": "1",
        }
        _check_bypass(spec, mode, env)

        argv = [*cli_argv(spec, "claude"), "-p", "--output-format", "stream-json", "--verbose"]
        # Variadic flags first, each closed by the next flag: nothing positional follows them.
        files: dict[str, str] = {}
        allowed = [rule for rule in spec.agent.tools_enabled if rule]
        mcp = _mcp_config(spec.mcp) if spec.mcp else None
        if spec.mcp and mcp:
            allowed.append(f"mcp__{spec.mcp.name}")  # agentfleet's own server needs no prompt
        denied = [rule for rule in spec.agent.tool_restrictions if rule]
        _check_rules([*allowed, *denied])
        tools = _tool_names(allowed, bool(spec.agent.sub_agents))
        if tools:
            # toolsEnabled is the whole set, as `tools:` in Claude's own agent files: without
            # --tools the other built-ins (Write, Bash...) would stay, only not pre-approved.
            argv += ["--tools", ",".join(tools)]
        if allowed:
            argv += ["--allowedTools", *allowed]
        if denied:
            argv += ["--disallowedTools", *denied]
        if mcp:
            files[MCP_CONFIG_FILE] = json.dumps(mcp, indent=2) + "\n"
            argv += [
                "--mcp-config",
                os.path.join(spec.context_dir, MCP_CONFIG_FILE),
                "--strict-mcp-config",
            ]
        session = session_id_for(spec.name, os.path.join(spec.context_dir, CONFIG_DIR))
        argv += ["--session-id", session, "--permission-mode", mode]
        if base.max_turns is not None:
            self._max_turns = base.max_turns
            argv += ["--max-turns", str(base.max_turns)]
        if base.model:
            argv += ["--model", base.model]
        system_prompt = _system_prompt(spec)
        if system_prompt:
            argv += ["--append-system-prompt", system_prompt]
        agents = _agents_json(spec)
        if agents:
            argv += ["--agents", agents]
        schema = _json_schema(spec)
        if schema:
            self._wants_structured = True
            argv += ["--json-schema", schema]
        argv += base.args
        return Invocation(argv=argv, env=env, stdin_text=prompt, files=files)

    # -- the stream ------------------------------------------------------------------------

    def parse_line(self, line: str) -> list[AgentEvent]:
        obj = json_object(line)
        if obj is None:
            return plain_line(line)
        if self._session_id is None and isinstance(obj.get("session_id"), str):
            self._session_id = obj["session_id"]
        kind = obj.get("type")
        if kind == "assistant":
            return self._assistant(obj)
        if kind == "user":
            return self._user(obj)
        if kind == "system":
            return self._system(obj)
        if kind == "result":
            return [self._result_event(obj)]
        return []

    def _assistant(self, obj: dict[str, Any]) -> list[AgentEvent]:
        message = as_dict(obj.get("message"))
        blocks = [b for b in as_list(message.get("content")) if isinstance(b, dict)]
        parent = obj.get("parent_tool_use_id")
        extra: dict[str, Any] = {"parentToolUseId": parent} if isinstance(parent, str) else {}
        error = obj.get("error")
        if isinstance(error, str) and error:
            # A synthetic message that carries an API failure, not something the model said.
            text = "\n".join(as_str(b.get("text")) for b in blocks if b.get("type") == "text")
            self._api_error = (error, text.strip())
            data = {"kind": error, **extra}
            return [AgentEvent(type=LogEventType.ERROR, text=text.strip() or error, data=data)]
        events = []
        for block in blocks:
            block_type = block.get("type")
            if block_type == "text":
                text = as_str(block.get("text"))
                if text:
                    events.append(AgentEvent(type=LogEventType.TEXT, text=text, data=dict(extra)))
            elif block_type == "tool_use":
                name = as_str(block.get("name"))
                tool_id = as_str(block.get("id"))
                if tool_id:
                    self._tool_names[tool_id] = name
                events.append(
                    AgentEvent(
                        type=LogEventType.TOOL_CALL,
                        text=name,
                        tool=name or None,
                        data={"id": tool_id, "input": block.get("input"), **extra},
                    )
                )
        return events

    def _user(self, obj: dict[str, Any]) -> list[AgentEvent]:
        """Tool results; the prompt and the CLI's own reminders are not events."""
        message = as_dict(obj.get("message"))
        parent = obj.get("parent_tool_use_id")
        extra: dict[str, Any] = {"parentToolUseId": parent} if isinstance(parent, str) else {}
        events = []
        for block in as_list(message.get("content")):
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            tool_id = as_str(block.get("tool_use_id"))
            events.append(
                AgentEvent(
                    type=LogEventType.TOOL_RESULT,
                    text=truncate(_content_text(block.get("content"))),
                    tool=self._tool_names.get(tool_id),
                    data={"id": tool_id, "isError": block.get("is_error") is True, **extra},
                )
            )
        return events

    def _system(self, obj: dict[str, Any]) -> list[AgentEvent]:
        subtype = obj.get("subtype")
        if subtype == "init":
            if isinstance(obj.get("session_id"), str):
                self._session_id = obj["session_id"]
            if isinstance(obj.get("model"), str):
                self._model = obj["model"]
            return self._mcp_failures(obj)
        if subtype == "api_retry":
            return [self._retry(obj)]
        if subtype == "permission_denied":
            tool = as_str(obj.get("tool_name"))
            return [
                AgentEvent(
                    type=LogEventType.ERROR,
                    text=as_str(obj.get("message")) or f"permission denied: {tool}",
                    tool=tool or None,
                    data={"kind": "permissionDenied", "id": as_str(obj.get("tool_use_id"))},
                )
            ]
        return []

    def _mcp_failures(self, init: dict[str, Any]) -> list[AgentEvent]:
        """An MCP server that did not connect is an error worth seeing; a connected one is not."""
        events = []
        for server in as_list(init.get("mcp_servers")):
            if not isinstance(server, dict):
                continue
            status = as_str(server.get("status"))
            if status and status != "connected":
                name = as_str(server.get("name"))
                events.append(
                    AgentEvent(
                        type=LogEventType.ERROR,
                        text=f"MCP server {name!r} is {status}",
                        data={"kind": "mcpServer", "server": name, "status": status},
                    )
                )
        return events

    def _retry(self, obj: dict[str, Any]) -> AgentEvent:
        attempt = obj.get("attempt")
        max_retries = obj.get("max_retries")
        delay = obj.get("retry_delay_ms")
        status = obj.get("error_status")
        error = obj.get("error")
        cause = ", ".join(str(part) for part in (status, error) if part not in (None, ""))
        return AgentEvent(
            type=LogEventType.RETRY,
            text=f"model API request failed ({cause or 'unknown error'}); "
            f"retry {attempt} of {max_retries} in {delay} ms",
            data={
                "attempt": attempt,
                "maxRetries": max_retries,
                "delayMs": delay,
                "status": status,
                "error": error,
            },
        )

    def _result_event(self, obj: dict[str, Any]) -> AgentEvent:
        self._result = obj
        if isinstance(obj.get("session_id"), str):
            self._session_id = obj["session_id"]
        failed = self._failed(obj)
        text = as_str(obj.get("result"))
        denials = [
            {"tool": as_str(d.get("tool_name")), "id": as_str(d.get("tool_use_id"))}
            for d in as_list(obj.get("permission_denials"))
            if isinstance(d, dict)
        ]
        return AgentEvent(
            type=LogEventType.RESULT,
            text=self._failure_message(obj) if failed else text,
            tokens=_tokens(obj),
            cost_usd=_cost(obj),
            data={
                "subtype": obj.get("subtype"),
                "isError": failed,
                "numTurns": obj.get("num_turns"),
                "terminalReason": obj.get("terminal_reason"),
                "permissionDenials": denials,
                "errors": [e for e in as_list(obj.get("errors")) if isinstance(e, str)],
                "sessionId": self._session_id,
                "model": self._model,
            },
        )

    @staticmethod
    def _failed(result: dict[str, Any]) -> bool:
        """`is_error` decides; only a result without it falls back to the subtype."""
        is_error = result.get("is_error")
        if isinstance(is_error, bool):
            return is_error
        return result.get("subtype") != "success"

    def _failure_message(self, result: dict[str, Any]) -> str:
        errors = [e for e in as_list(result.get("errors")) if isinstance(e, str) and e]
        text = as_str(result.get("result")).strip()
        reason = as_str(result.get("terminal_reason"))
        subtype = as_str(result.get("subtype"))
        api_kind = self._api_error[0] if self._api_error else ""
        if subtype == "error_max_turns" or reason == "max_turns":
            found = _MAX_TURNS.search(" ".join(errors))
            limit = found.group(1) if found else self._max_turns
            return f"reached max turns ({limit})" if limit else "reached max turns"
        startup = as_str(result.get("startup_failure_reason"))
        if startup:
            return f"claude could not start ({startup}): {'; '.join(errors) or text}"
        if api_kind == "authentication_failed" or result.get("api_error_status") == 401:
            detail = text or (self._api_error[1] if self._api_error else "")
            return f"authentication failed: {detail or 'the API refused the credentials'}"
        if errors:
            return "; ".join(errors)
        if api_kind:
            detail = text or (self._api_error[1] if self._api_error else "")
            return f"model API error ({api_kind}): {detail}" if detail else api_kind
        if text:
            return text
        if reason:
            return f"claude stopped: {reason}"
        return f"claude reported an error ({subtype or 'no subtype'})"

    def finish(self, exit_code: int) -> ExecutorOutcome:
        result = self._result
        if result is None:
            message = f"claude exited {exit_code} without a final result (crashed or killed)"
            if self._api_error:
                message += f"; last API error: {self._api_error[1] or self._api_error[0]}"
            return ExecutorOutcome(
                tokens=None,
                cost_usd=None,
                text="",
                ok=False,
                message=message,
                session_id=self._session_id,
            )
        structured = result.get("structured_output")
        ok = not self._failed(result)
        message = "" if ok else self._failure_message(result)
        invalid = False
        gave_up = ok or result.get("subtype") == "error_max_structured_output_retries"
        if self._wants_structured and structured is None and gave_up:
            # The agent ran; its answer is what is wrong. The runner still reads the text.
            ok, invalid = True, True
            message = (
                "the agent finished without the structured answer --json-schema asked for "
                f"(no valid call of the {STRUCTURED_OUTPUT_TOOL} tool)"
            )
        return ExecutorOutcome(
            tokens=_tokens(result),
            cost_usd=_cost(result),
            text=as_str(result.get("result")),
            ok=ok,
            message=message,
            structured=structured,
            session_id=self._session_id,
            answer_invalid=invalid,
        )
