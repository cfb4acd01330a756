"""The Gemini CLI executor: `gemini -p "" --output-format stream-json` and its JSONL stream.

The contract it relies on was observed on Gemini CLI 0.61.0 against a scripted Gemini API
(`shared/AGENT_CLIS.md` section 4, the bundle's own sources, and the recordings in
`tests/unit/executors/recordings/gemini/`):

* The prompt goes on stdin. `-p` text is appended to stdin as `<stdin>\\n\\n<text>`; an
  empty `-p ""` adds nothing (the model sees the stdin text exactly) and still makes the run
  headless explicitly, instead of relying on stdin/stdout not being a terminal.
* Settings live in `$GEMINI_CLI_HOME/.gemini/` (the CLI creates `.gemini` inside that home),
  so each run gets its own home under its context dir: settings.json, a policy file and a
  GEMINI.md. GOOGLE_GEMINI_BASE_URL in the environment makes the CLI pick the `gateway` auth
  type, which headless runs refuse ("Invalid auth method selected.", exit 41); settings.json
  names the auth type explicitly, and the base URL is still honoured by `gemini-api-key`.
* `toolsEnabled` and `toolRestrictions` become policy-engine rules in
  `$GEMINI_CLI_HOME/.gemini/policies/agentfleet.toml` (the user tier). The settings keys
  `tools.allowed` and `tools.exclude` still work in 0.61.0 but print deprecation warnings
  and are due to go in 1.0. A `deny` rule without arguments removes the tool from what the
  model is offered; `run_shell_command(prefix)` denies or allows by command prefix.
* Without `--skip-trust` (or GEMINI_CLI_TRUST_WORKSPACE) a headless run in a folder never
  trusted interactively exits 55, after turning the approval mode back into `default`.
  In headless `default` the model is offered no shell and no edit tools at all (tools that
  would ask are denied), hence `auto_edit` as agentfleet's default.
* The CLI re-executes itself in a child node process to raise its heap limit;
  GEMINI_CLI_NO_RELAUNCH skips that and halves the start (about 2.5 s instead of 4.5 s here).
* Success is the `result` line's `status`. API failures end with `status: "error"` and exit
  with the HTTP status modulo 256 (401 -> 145, 503 -> 247); `--session-id` takes a uuid.
* Retries of the model API show only on stderr ("Attempt N failed ... Retrying with
  backoff"); `general.maxAttempts` in settings bounds them (at most 10). 401 and 403 are
  never retried.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..models.log import LogEventType
from ..models.run import TokenUsage
from .base import (
    AgentEvent,
    ExecutorOutcome,
    InvalidAgentConfigError,
    Invocation,
    cli_argv,
    priced_cost,
    run_environment,
)
from .stream import as_dict, as_int, as_str, json_object, plain_line, truncate

if TYPE_CHECKING:
    from ..models.agent import Pricing
    from ..runner.spec import McpServer, RunSpec

SESSION_NAMESPACE = uuid.UUID("0f3b8d6e-2c47-4a9e-b1d5-7e6a9c2f4b18")
"""uuid5 namespace of session ids: the same run name always gives the same session id, so a
run's transcript (`<home>/.gemini/tmp/<project>/chats/session-*-<id8>.jsonl`) can be found."""

DEFAULT_APPROVAL_MODE = "auto_edit"
HOME_DIR = "gemini"
"""GEMINI_CLI_HOME, relative to the context dir; the CLI keeps its state in `<home>/.gemini`."""
SETTINGS_FILE = f"{HOME_DIR}/.gemini/settings.json"
POLICY_FILE = f"{HOME_DIR}/.gemini/policies/agentfleet.toml"
INSTRUCTIONS_FILE = f"{HOME_DIR}/.gemini/GEMINI.md"
MAX_ATTEMPTS_LIMIT = 10  # general.maxAttempts "cannot exceed 10"
MCP_TOKEN_VARIABLE = "AGENTFLEET_MCP_TOKEN"
"""Characters of a tool's output kept in its event: enough to see what happened, small
enough that a `cat` of a large file does not bloat the run's log."""
DENY_PRIORITY = 900
ALLOW_PRIORITY = 100
"""Policy priorities inside the user tier (0-999): a restriction beats an enabled tool."""
SHELL_TOOLS = ("run_shell_command", "ShellTool")
TURN_LIMIT_MESSAGE = "Maximum session turns exceeded"

_TOOL_RULE = re.compile(r"^(?P<name>[^()\s]+)\s*(?:\((?P<args>.*)\))?$", re.DOTALL)

EXIT_CODES: dict[int, str] = {
    1: "general error or model API failure",
    41: "authentication failed or no auth method configured",
    42: "input error (empty prompt or bad arguments)",
    44: "sandbox error",
    52: "configuration error",
    53: "the turn limit (maxTurns) was reached",
    54: "a tool failed fatally",
    55: "the workspace is not trusted",
    130: "cancelled",
}
"""What the CLI's exit codes mean (`ExitCodes` and the Fatal*Error classes in the bundle)."""

API_STATUSES = (400, 401, 403, 404, 429, 500, 502, 503, 504)
"""An API error exits with its HTTP status modulo 256 (the CLI passes the status to
`process.exit`): 145 is a 401, 247 a 503. Codes that match no other meaning are read so."""


def session_id_for(run_name: str, home: str | None = None) -> str:
    """uuid5 of the run name, or of `name#n` when `home` already holds that session.

    The CLI refuses a session id it has a transcript for ("already exists", exit 42); that
    happens when the same run starts again in the same context dir (a Pod restarted).
    Transcripts are named `session-<time>-<first 8 characters of the id>.jsonl`.
    """
    taken: set[str] = set()
    if home is not None:
        chats = Path(home, ".gemini", "tmp").glob("*/chats/session-*")
        taken = {path.name.rsplit("-", 1)[-1].split(".", 1)[0] for path in chats}
    candidate, n = str(uuid.uuid5(SESSION_NAMESPACE, run_name)), 0
    while candidate[:8] in taken:
        n += 1
        candidate = str(uuid.uuid5(SESSION_NAMESPACE, f"{run_name}#{n}"))
    return candidate


def exit_code_meaning(exit_code: int) -> str:
    """What a Gemini CLI exit code says, or "" when it says nothing known."""
    if exit_code in EXIT_CODES:
        return EXIT_CODES[exit_code]
    for status in API_STATUSES:
        if exit_code == status % 256:
            return f"model API error: HTTP {status} (the CLI exits with the status mod 256)"
    return ""


def auth_type(environment: Mapping[str, str]) -> str:
    """The auth type for settings.json, following the CLI's own choice from the environment.

    The CLI would pick `gateway` whenever GOOGLE_GEMINI_BASE_URL is set, and a headless run
    rejects that type; an API key with a custom base URL is `gemini-api-key`.
    """
    if environment.get("GOOGLE_GENAI_USE_GCA") == "true":
        return "oauth-personal"
    if environment.get("GOOGLE_GENAI_USE_VERTEXAI") == "true":
        return "vertex-ai"
    if environment.get("GEMINI_CLI_USE_COMPUTE_ADC") == "true":
        return "compute-default-credentials"
    return "gemini-api-key"


def _mcp_server(mcp: McpServer) -> dict[str, Any] | None:
    """The `mcpServers` entry; `trust` because headless runs deny any tool that would ask."""
    server: dict[str, Any]
    if mcp.url:
        server = {"httpUrl": mcp.url}
        if mcp.token:
            server["headers"] = {"Authorization": f"Bearer {mcp.token}"}
    elif mcp.command:
        server = {"command": mcp.command[0], "args": list(mcp.command[1:])}
        if mcp.token:
            server["env"] = {MCP_TOKEN_VARIABLE: mcp.token}
    else:
        return None
    server["trust"] = True
    return server


def mcp_alias(name: str) -> str:
    """The server's alias: the policy engine splits `mcp_<alias>_<tool>` at underscores."""
    return name.replace("_", "-") or "agentfleet"


def settings_for(spec: RunSpec, environment: Mapping[str, str]) -> dict[str, Any]:
    """settings.json of the run's home; `environment` is what the agent will inherit.

    `general.maxAttempts` counts the first request too, so it is maxRetries + 1; the CLI
    waits 5 s before the first retry and doubles up to 30 s, so the run's deadline is what
    bounds a long outage of an API that keeps answering 429 or 5xx.
    """
    base = spec.agent.base_executor
    settings: dict[str, Any] = {
        "security": {"auth": {"selectedType": auth_type(environment)}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {
            "enableAutoUpdate": False,
            "enableAutoUpdateNotification": False,
            "maxAttempts": min(base.max_retries + 1, MAX_ATTEMPTS_LIMIT),
        },
    }
    if base.max_turns is not None:
        settings["model"] = {"maxSessionTurns": base.max_turns}
    server = _mcp_server(spec.mcp) if spec.mcp else None
    if spec.mcp and server:
        settings["mcpServers"] = {mcp_alias(spec.mcp.name): server}
    return settings


def _toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes are all valid TOML escapes, and TOML also wants
    DEL escaped (the CLI drops a policy file it cannot parse, restrictions and all)."""
    return json.dumps(value).replace("\x7f", "\\u007f")


def _policy_rule(entry: str, decision: str, priority: int) -> str:
    """One `[[rule]]` for a toolsEnabled/toolRestrictions entry: a name, or a shell prefix."""
    match = _TOOL_RULE.match(entry.strip())
    if match is None:
        raise InvalidAgentConfigError(
            f"tool rule {entry!r}: expected a Gemini tool name such as `run_shell_command`, "
            "or `run_shell_command(<command prefix>)`"
        )
    name, args = match["name"], (match["args"] or "").strip()
    lines = ["[[rule]]"]
    if args:
        if name not in SHELL_TOOLS:
            raise InvalidAgentConfigError(
                f"tool rule {entry!r}: Gemini narrows only run_shell_command by its arguments "
                "(a command prefix); name the whole tool instead"
            )
        prefix = args.removesuffix("*").rstrip(": ")  # `rm:*`, `git *`: the prefix before
        if not prefix:
            raise InvalidAgentConfigError(f"tool rule {entry!r}: empty command prefix")
        lines += ['toolName = "run_shell_command"', f"commandPrefix = {_toml_string(prefix)}"]
    else:
        lines.append(f"toolName = {_toml_string(name)}")
    lines += [f'decision = "{decision}"', f"priority = {priority}"]
    if decision == "deny":
        lines.append('denyMessage = "restricted by the agent\'s toolRestrictions (agentfleet)"')
    return "\n".join(lines) + "\n"


def policy_for(spec: RunSpec) -> str | None:
    """The user-tier policy file, or None when the agent neither enables nor restricts."""
    rules = [
        _policy_rule(entry, "deny", DENY_PRIORITY)
        for entry in spec.agent.tool_restrictions
        if entry.strip()
    ]
    rules += [
        _policy_rule(entry, "allow", ALLOW_PRIORITY)
        for entry in spec.agent.tools_enabled
        if entry.strip()
    ]
    if not rules:
        return None
    header = "# Written by agentfleet for this run: toolRestrictions deny, toolsEnabled allow.\n"
    return header + "\n" + "\n".join(rules)


def instructions_for(spec: RunSpec) -> str:
    """The run's global GEMINI.md, which the CLI appends to its own system prompt.

    The same texts are in the prompt on stdin; in the system prompt they outlive the CLI's
    chat compression and weigh as instructions rather than as a message. GEMINI_SYSTEM_MD
    would replace the CLI's whole system prompt (tool usage rules included), so it is not used.
    """
    parts = []
    agent = spec.agent.specialized_instructions.strip()
    if agent:
        parts.append(f"# Agent instructions ({spec.agent_name})\n\n{agent}")
    stage = spec.stage_spec.instructions.strip() if spec.stage_spec else ""
    if stage:
        parts.append(f"# Stage instructions ({spec.stage})\n\n{stage}")
    return "\n\n".join(parts)


def _tokens(stats: dict[str, Any]) -> TokenUsage:
    """The session's tokens from `result.stats` (every model, the router's calls included).

    `input_tokens` is the prompt count and includes the `cached` part; `input` is the
    uncached rest (the CLI computes prompt - cached), so cached tokens are counted once, as
    cacheRead. `output_tokens` leaves out thinking tokens, which are billed as output: the
    part of `total_tokens` beyond prompt and candidates (thoughts, plus the rare tool-use
    prompt tokens) is counted as output.
    """
    prompt = as_int(stats.get("input_tokens"))
    cached = as_int(stats.get("cached"))
    uncached = stats.get("input")
    fresh = as_int(uncached) if isinstance(uncached, int) else max(prompt - cached, 0)
    candidates = as_int(stats.get("output_tokens"))
    extra = max(as_int(stats.get("total_tokens")) - prompt - candidates, 0)
    return TokenUsage(input=fresh, output=candidates + extra, cache_read=cached)


def _error_text(error: object) -> str:
    """`type: message`; API errors all have the type "unknown", which says nothing."""
    error = as_dict(error)
    kind, message = as_str(error.get("type")), as_str(error.get("message"))
    if kind == "unknown":
        kind = ""
    if kind and message:
        return f"{kind}: {message}"
    return message or kind


RETRY_LINE = re.compile(
    r"Attempt (?P<attempt>\d+) failed(?: with status (?P<status>\d+))?\. Retrying with backoff"
)


class GeminiExecutor:
    """One run of the Gemini CLI: builds its command line and home, then reads stream-json."""

    def __init__(self) -> None:
        self._pricing: Pricing | None = None
        self._max_turns: int | None = None
        self._tool_names: dict[str, str] = {}
        self._segments: list[str] = [""]
        self._result: dict[str, Any] | None = None
        self._session_id: str | None = None
        self._model: str | None = None
        self._turn_limit_hit = False
        self._last_error = ""

    # -- the command line ------------------------------------------------------------------

    def command(self, spec: RunSpec, prompt: str) -> Invocation:
        base = spec.agent.base_executor
        self._pricing = base.pricing
        self._max_turns = base.max_turns
        home = os.path.join(spec.context_dir, HOME_DIR)
        argv = [
            *cli_argv(spec, "gemini"),
            "-p",
            "",
            "--output-format",
            "stream-json",
            "--skip-trust",
            "--approval-mode",
            base.permission_mode or DEFAULT_APPROVAL_MODE,
        ]
        if base.model:
            argv += ["-m", base.model]
        argv += ["--session-id", session_id_for(spec.name, home), *base.args]
        env = {
            "GEMINI_TELEMETRY_ENABLED": "false",
            "GEMINI_CLI_NO_RELAUNCH": "true",
            **base.env,
            **run_environment(spec),
            "GEMINI_CLI_HOME": home,
            "GEMINI_CLI_TRUST_WORKSPACE": "true",
        }
        settings = settings_for(spec, {**os.environ, **base.env})
        files = {SETTINGS_FILE: json.dumps(settings, indent=2) + "\n"}
        policy = policy_for(spec)
        if policy:
            files[POLICY_FILE] = policy
        instructions = instructions_for(spec)
        if instructions:
            files[INSTRUCTIONS_FILE] = instructions + "\n"
        return Invocation(argv=argv, env=env, stdin_text=prompt, files=files)

    # -- the stream ------------------------------------------------------------------------

    def parse_line(self, line: str) -> list[AgentEvent]:
        obj = json_object(line)
        if obj is None:
            return plain_line(line)
        kind = obj.get("type")
        if kind == "init":
            self._session_id = as_str(obj.get("session_id")) or self._session_id
            self._model = as_str(obj.get("model")) or self._model
            return []
        if kind == "message":
            return self._message(obj)
        if kind == "tool_use":
            return [self._tool_use(obj)]
        if kind == "tool_result":
            return [self._tool_result(obj)]
        if kind == "error":
            return [self._error(obj)]
        if kind == "result":
            return [self._result_event(obj)]
        return []

    def _message(self, obj: dict[str, Any]) -> list[AgentEvent]:
        """Assistant text, delta by delta; the user's message is the prompt echoed back."""
        if obj.get("role") != "assistant":
            return []
        text = as_str(obj.get("content"))
        if not text:
            return []
        self._segments[-1] += text
        return [AgentEvent(type=LogEventType.TEXT, text=text)]

    def _tool_use(self, obj: dict[str, Any]) -> AgentEvent:
        name = as_str(obj.get("tool_name"))
        tool_id = as_str(obj.get("tool_id"))
        if tool_id:
            self._tool_names[tool_id] = name
        if self._segments[-1]:
            self._segments.append("")  # text after a tool call is a new message
        parameters = obj.get("parameters")
        return AgentEvent(
            type=LogEventType.TOOL_CALL,
            text=name,
            tool=name or None,
            data={"id": tool_id, "input": parameters if isinstance(parameters, dict) else {}},
        )

    def _tool_result(self, obj: dict[str, Any]) -> AgentEvent:
        tool_id = as_str(obj.get("tool_id"))
        error = obj.get("error")
        is_error = obj.get("status") == "error" or isinstance(error, dict)
        text = as_str(obj.get("output")) or as_str(as_dict(error).get("message"))
        return AgentEvent(
            type=LogEventType.TOOL_RESULT,
            text=truncate(text),
            tool=self._tool_names.get(tool_id),
            data={
                "id": tool_id,
                "isError": is_error,
                "error": as_dict(error) or None,
            },
        )

    def _error(self, obj: dict[str, Any]) -> AgentEvent:
        """Loop detection, the turn limit, an empty or blocked answer: told, not always fatal."""
        message = as_str(obj.get("message"))
        if message == TURN_LIMIT_MESSAGE:
            self._turn_limit_hit = True
        severity = as_str(obj.get("severity")) or "error"
        if severity == "error" and message:
            self._last_error = message
        return AgentEvent(type=LogEventType.ERROR, text=message, data={"severity": severity})

    def _result_event(self, obj: dict[str, Any]) -> AgentEvent:
        self._result = obj
        stats = as_dict(obj.get("stats"))
        tokens = _tokens(stats) if stats else None
        failed = not self._succeeded(obj)
        error = as_dict(obj.get("error"))
        return AgentEvent(
            type=LogEventType.RESULT,
            text=self._failure_message(obj) if failed else self.final_text(),
            tokens=tokens,
            cost_usd=self._cost(tokens),
            data={
                "status": as_str(obj.get("status")),
                "isError": failed,
                "error": error or None,
                "durationMs": stats.get("duration_ms"),
                "toolCalls": stats.get("tool_calls"),
                "sessionId": self._session_id,
                "model": self._model,
            },
        )

    def _succeeded(self, result: dict[str, Any]) -> bool:
        return result.get("status") == "success" and not self._turn_limit_hit

    def _failure_message(self, result: dict[str, Any]) -> str:
        error = as_dict(result.get("error"))
        if error.get("type") == "FatalTurnLimitedError" or self._turn_limit_hit:
            limit = f" ({self._max_turns})" if self._max_turns else ""
            return f"reached max turns{limit}: {as_str(error.get('message')) or 'stopped'}"
        # An empty or blocked model answer ends as status "error" without an error object,
        # after an error event that says what happened (and the CLI exits 0).
        described = _error_text(error) or self._last_error
        if described:
            return described
        return f"gemini reported {as_str(result.get('status')) or 'no status'}"

    def _cost(self, tokens: TokenUsage | None) -> float | None:
        """Gemini reports no cost: it is the tokens at the agent's `pricing`, if it has one."""
        return priced_cost(tokens, self._pricing)

    def parse_stderr_line(self, line: str) -> list[AgentEvent]:
        """Gemini reports its API retries on stderr only; they become RETRY events."""
        match = RETRY_LINE.search(line)
        if match is None:
            return []
        data: dict[str, Any] = {"attempt": int(match["attempt"])}
        if match["status"]:
            data["status"] = int(match["status"])
        return [AgentEvent(type=LogEventType.RETRY, text=line.strip(), data=data)]

    def final_text(self) -> str:
        """The last thing the model said: the text after its last tool call (or before it,
        when a closing tool call such as `update_topic` came after the answer)."""
        for segment in reversed(self._segments):
            if segment.strip():
                return segment
        return ""

    def finish(self, exit_code: int) -> ExecutorOutcome:
        result = self._result
        meaning = exit_code_meaning(exit_code)
        explained = f"exit {exit_code}: {meaning}" if meaning else f"exit {exit_code}"
        if result is None:
            return ExecutorOutcome(
                tokens=None,
                cost_usd=None,
                text=self.final_text(),
                ok=False,
                message=f"gemini ended without a final result ({explained})",
                session_id=self._session_id,
            )
        stats = as_dict(result.get("stats"))
        tokens = _tokens(stats) if stats else None
        ok = self._succeeded(result)
        message = ""
        if not ok:
            message = self._failure_message(result)
            if exit_code != 0:
                message = f"{message} ({explained})"
        return ExecutorOutcome(
            tokens=tokens,
            cost_usd=self._cost(tokens),
            text=self.final_text(),
            ok=ok,
            message=message,
            session_id=self._session_id,
        )
