"""The Codex CLI executor: `codex exec --json` and its JSONL ThreadEvents.

The contract it relies on was observed on Codex CLI 0.169.0 against a scripted Responses API
(`shared/AGENT_CLIS.md` section 5, `strings` on the native binary, and the recordings in
`tests/unit/executors/recordings/codex/`):

* The prompt goes on stdin (`-` as the prompt): never in argv, where `ps` shows it.
* Each run gets its own CODEX_HOME under the context dir, holding a config.toml that
  agentfleet writes. The folder must exist before the start (Codex refuses a CODEX_HOME that
  does not), which writing the file guarantees. Codex also keeps its session transcript and
  SQLite state there, so a run leaves its history beside its context. A per-run home means
  `codex login` credentials of the user do not apply: the key comes from the environment.
  Codex 0.169.0 reads CODEX_API_KEY for its built-in `openai` provider; OPENAI_API_KEY and
  OPENAI_BASE_URL are ignored there (requests went out without a key, to api.openai.com).
  A custom provider (`-c model_providers.<id>.*` in `baseExecutor.args`) reads its `env_key`.
* Codex does not give up when the network is down: the feature `unbounded_connection_retries`
  (on by default) retries "waiting for network" forever, whatever the provider's retry
  settings. config.toml turns it off; then `stream_max_retries` bounds the "Reconnecting...
  N/M" retries of a turn and `request_max_retries` the silent retries of one HTTP request.
  Both are per provider, and Codex refuses them for its built-in providers (`openai` retries
  5 times, about 7 s for a 401), so `baseExecutor.maxRetries` applies to a custom provider
  selected in `baseExecutor.args`, where the arguments after agentfleet's own still win.
* The sandbox: `workspace-write` works as root in a plain container (the bundled bubblewrap,
  plus seccomp; writes outside the worktree fail with "Read-only file system"). A Pod made
  for the run (`spec.sandboxed`) is the sandbox itself, and bubblewrap's user namespaces are
  what its profile (non-root, no capabilities, RuntimeDefault seccomp) normally refuses, so
  an unset `permissionMode` there means `danger-full-access` (that refusal could not be
  reproduced here, where the tests run as root with every capability). Refinement runs
  default to `read-only`: they read a copy of the base branch, and nothing they write is
  kept.
* Instructions (the agent's and the stage's) become `developer_instructions`: the first
  developer message of every request, ahead of Codex's own. AGENTS.md is not used: it
  would have to be written into the worktree, which is committed.
* Tools: Codex has no allow-list. `toolRestrictions` maps onto what Codex can switch off
  (see `RESTRICTABLE_TOOLS`); `shell(<command prefix>)` becomes an execpolicy rule with
  `decision = "forbidden"` in `$CODEX_HOME/rules/`, which rejects the command before it runs
  (compound commands included); `mcp:<server>/<tool>` becomes the server's `disabled_tools`.
  `apply_patch` cannot be removed (the model catalog decides it); `permissionMode:
  read-only` is the way to forbid edits. `toolsEnabled` has nothing to
  pre-approve (exec never asks for approval) and may only name Codex tools; a shell prefix
  there is refused, because an execpolicy `allow` rule runs the command outside the sandbox
  (verified: an allowed `touch` wrote outside the worktree under workspace-write).
* No turn limit exists in Codex 0.169.0: `maxTurns` is not enforced, the run's deadline is.
  Sub-agents are not mapped either.
* MCP: agentfleet's server is `required` (a server that cannot start fails the run before
  the model is called, instead of leaving the agent without its tools) and its tools are
  approved up front: under exec's approval policy "never", Codex otherwise refuses every MCP
  call ("MCP tool call requires approval"). The token is in config.toml only (mode 0600):
  in the server's own `env` for a command, in an Authorization header for a URL. As an
  environment variable of the agent it would reach every shell command the model runs.
* Success is `turn.completed` vs `turn.failed`; exit 1 follows a failed turn. An `error`
  line whose message starts with "Reconnecting..." is a retry, others are errors; the
  `turn.completed` usage counts cached (and cache-write) tokens inside `input_tokens` and
  reasoning tokens inside `output_tokens`, so both are split out here, never added twice.
* RUST_BACKTRACE=0: with a backtrace on, a fatal error's last stderr lines (what a failed
  run's message quotes) are frames of `<unknown>`, not the error.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..models.log import LogEventType
from ..models.run import RunKind, TokenUsage
from .base import (
    AgentEvent,
    ExecutorOutcome,
    InvalidAgentConfigError,
    Invocation,
    cli_argv,
    priced_cost,
    run_environment,
)
from .stream import as_dict, as_int, as_list, as_str, json_object, plain_line, truncate

if TYPE_CHECKING:
    from ..models.agent import Pricing
    from ..runner.spec import McpServer, RunSpec

HOME_DIR = "codex"
CONFIG_FILE = f"{HOME_DIR}/config.toml"
RULES_FILE = f"{HOME_DIR}/rules/agentfleet.rules"
LAST_MESSAGE_FILE = "last-message.txt"

DEFAULT_SANDBOX = "workspace-write"
POD_SANDBOX = "danger-full-access"
REFINEMENT_SANDBOX = "read-only"

"""Characters of a tool's output kept in its event: enough to see what happened, small
enough that a `cat` of a large file does not bloat the run's log."""

MCP_TOKEN_VARIABLE = "AGENTFLEET_MCP_TOKEN"
MCP_STARTUP_TIMEOUT_SECONDS = 30

SHELL_TOOL = "shell"
PATCH_TOOL = "apply_patch"

RESTRICTABLE_TOOLS: dict[str, tuple[str, ...]] = {
    "shell": ("features", "shell_tool"),
    "exec_command": ("features", "shell_tool"),
    "web_search": ("web_search",),
    "view_image": ("features", "view_image"),
    "image_generation": ("features", "image_generation"),
    "goals": ("features", "goals"),
    "multi_agent": ("features", "multi_agent"),
}
"""`toolRestrictions` names and the config that removes each from what the model is offered,
checked against the requests Codex sends for gpt-5.5: `shell`/`exec_command` take
`exec_command` and `write_stdin` away, `goals` the three goal tools, `multi_agent` the
sub-agent tools (and `tool_search` when no MCP server needs it). That model is never offered
image generation, so `image_generation` is the feature switch by its documented name."""

UNMAPPABLE_TOOLS: dict[str, str] = {
    "apply_patch": "Codex offers apply_patch whenever the model's catalog entry says so; use "
    "permissionMode read-only to forbid edits",
}

BUILT_IN_PROVIDERS = frozenset({"openai", "ollama", "lmstudio", "amazon-bedrock", "gcp"})
"""Provider ids Codex 0.169.0 refuses retry settings for ("Built-in providers cannot be
overridden", or "only supports changing `base_url`, ...")."""

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOOL_RULE = re.compile(r"^(?P<name>[A-Za-z_][\w.:/-]*)\s*(?:\((?P<args>.*)\))?$", re.DOTALL)
_RECONNECTING = re.compile(r"^Reconnecting\.\.\.\s*(?:(?P<attempt>\d+)/(?P<max>\d+))?")
_AUTH_FAILURE = re.compile(r"\b(401|403)\b|Unauthorized|Forbidden|invalid_api_key", re.I)

_TOML_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


# -- TOML, written by hand: the standard library reads TOML but does not write it ----------


def toml_string(value: str) -> str:
    """A TOML basic string for any Python string.

    JSON escaping is not enough: TOML forbids a raw DEL, and its `\\u` escapes must be
    Unicode scalar values, so a lone surrogate (possible in a str decoded from JSON) has no
    TOML spelling at all and becomes U+FFFD.
    """
    out = []
    for char in value:
        code = ord(char)
        if char in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[char])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else toml_string(key)


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = ", ".join(f"{toml_key(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + pairs + " }" if pairs else "{}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def toml_document(table: dict[str, Any]) -> str:
    """Plain values first, then each sub-table as a `[dotted.header]` section."""
    lines: list[str] = []

    def section(path: list[str], body: dict[str, Any]) -> None:
        plain = {k: v for k, v in body.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in body.items() if isinstance(v, dict)}
        if path and (plain or not tables):
            if lines:
                lines.append("")
            lines.append("[" + ".".join(toml_key(part) for part in path) + "]")
        for key, value in plain.items():
            lines.append(f"{toml_key(key)} = {toml_value(value)}")
        for key, value in tables.items():
            section([*path, key], value)

    section([], table)
    return "\n".join(lines) + "\n"


# -- the configuration ----------------------------------------------------------------------


def instructions_for(spec: RunSpec) -> str:
    """`developer_instructions`: who the agent is and what the stage asks.

    The same texts are in the prompt on stdin; as a developer message they weigh as
    instructions rather than as part of the task.
    """
    parts = []
    agent = spec.agent.specialized_instructions.strip()
    if agent:
        parts.append(f"# Agent instructions ({spec.agent_name})\n\n{agent}")
    stage = spec.stage_spec.instructions.strip() if spec.stage_spec else ""
    if stage:
        parts.append(f"# Stage instructions ({spec.stage})\n\n{stage}")
    return "\n\n".join(parts)


def sandbox_for(spec: RunSpec) -> str:
    mode = spec.agent.base_executor.permission_mode
    if mode:
        return mode
    if spec.sandboxed:
        return POD_SANDBOX
    if spec.kind is RunKind.REFINEMENT:
        return REFINEMENT_SANDBOX
    return DEFAULT_SANDBOX


def _set(table: dict[str, Any], path: tuple[str, ...], value: object) -> None:
    for part in path[:-1]:
        table = table.setdefault(part, {})
    table[path[-1]] = value


def _parse_rule(entry: str) -> tuple[str, str | None]:
    """(name, arguments) of `name` or `name(arguments)`."""
    match = _TOOL_RULE.match(entry.strip())
    if match is None:
        raise InvalidAgentConfigError(
            f"tool rule {entry!r}: expected a Codex tool name such as `web_search`, "
            "`shell(<command prefix>)` or `mcp:<server>/<tool>`"
        )
    args = match["args"]
    return match["name"], args.strip() if args is not None else None


def _command_prefix(entry: str, args: str) -> list[str]:
    """The words of `shell(git push)` (also `git push:*`, `git push *`), checked for the rules
    file: Starlark string literals, so no quote, backslash or control character."""
    prefix = args.removesuffix("*").rstrip(": ")
    try:
        words = shlex.split(prefix)
    except ValueError as exc:
        raise InvalidAgentConfigError(f"tool rule {entry!r}: {exc}") from None
    if not words:
        raise InvalidAgentConfigError(f"tool rule {entry!r}: empty command prefix")
    for word in words:
        if any(c in word for c in '"\\') or any(ord(c) < 0x20 or ord(c) == 0x7F for c in word):
            raise InvalidAgentConfigError(
                f"tool rule {entry!r}: a command prefix word may not hold quotes, "
                "backslashes or control characters"
            )
    return words


def _known_tools() -> str:
    names = sorted({*RESTRICTABLE_TOOLS, *UNMAPPABLE_TOOLS})
    return ", ".join(names) + ", shell(<command prefix>), mcp:<server>/<tool>"


def tool_restrictions(
    spec: RunSpec,
) -> tuple[dict[str, Any], list[list[str]], dict[str, list[str]]]:
    """What `toolRestrictions` becomes: config values, forbidden command prefixes, and MCP
    tools to disable per server. Refuses what Codex cannot honour instead of ignoring it."""
    config: dict[str, Any] = {}
    prefixes: list[list[str]] = []
    mcp_disabled: dict[str, list[str]] = {}
    for entry in spec.agent.tool_restrictions:
        if not entry.strip():
            continue
        name, args = _parse_rule(entry)
        if name.startswith("mcp:"):
            server, _, tool = name.removeprefix("mcp:").partition("/")
            if not server or not tool or args is not None:
                raise InvalidAgentConfigError(
                    f"tool rule {entry!r}: an MCP tool is `mcp:<server>/<tool>`"
                )
            mcp_disabled.setdefault(server, []).append(tool)
        elif args is not None:
            if name not in (SHELL_TOOL, "exec_command"):
                raise InvalidAgentConfigError(
                    f"tool rule {entry!r}: Codex narrows only the shell by its arguments "
                    "(a command prefix); name the whole tool instead"
                )
            prefixes.append(_command_prefix(entry, args))
        elif name in RESTRICTABLE_TOOLS:
            path = RESTRICTABLE_TOOLS[name]
            _set(config, path, "disabled" if path == ("web_search",) else False)
        elif name in UNMAPPABLE_TOOLS:
            raise InvalidAgentConfigError(f"tool rule {entry!r}: {UNMAPPABLE_TOOLS[name]}")
        else:
            raise InvalidAgentConfigError(
                f"tool rule {entry!r}: not a Codex tool agentfleet can restrict; known: "
                f"{_known_tools()}"
            )
    return config, prefixes, mcp_disabled


def check_tools_enabled(spec: RunSpec) -> None:
    """`toolsEnabled` changes nothing for Codex (every tool is on, exec never asks), but a
    name Codex does not know is a mistake worth reporting, and a shell prefix would need an
    execpolicy `allow` rule, which runs the command outside the sandbox."""
    for entry in spec.agent.tools_enabled:
        if not entry.strip():
            continue
        name, args = _parse_rule(entry)
        if args is not None:
            raise InvalidAgentConfigError(
                f"tool rule {entry!r} in toolsEnabled: Codex runs an allowed command prefix "
                "outside its sandbox, so agentfleet does not map it; every command the "
                "sandbox permits already runs without asking"
            )
        if not (name in RESTRICTABLE_TOOLS or name in UNMAPPABLE_TOOLS or name.startswith("mcp:")):
            raise InvalidAgentConfigError(
                f"tool rule {entry!r} in toolsEnabled: not a Codex tool; known: {_known_tools()}"
            )


def rules_for(prefixes: list[list[str]]) -> str:
    """The execpolicy file (Starlark) forbidding each prefix."""
    lines = ["# Written by agentfleet for this run: the agent's toolRestrictions.\n"]
    for words in prefixes:
        pattern = ", ".join(json.dumps(word, ensure_ascii=False) for word in words)
        lines.append(
            f'prefix_rule(pattern=[{pattern}], decision="forbidden", '
            'justification="restricted by the agent\'s toolRestrictions (agentfleet)")\n'
        )
    return "".join(lines)


def mcp_server_config(mcp: McpServer, disabled: list[str]) -> dict[str, Any] | None:
    """`mcp_servers.<name>`; the token only in this file, never in argv or the agent's env."""
    server: dict[str, Any]
    if mcp.command:
        server = {"command": mcp.command[0], "args": list(mcp.command[1:])}
        if mcp.token:
            server["env"] = {MCP_TOKEN_VARIABLE: mcp.token}
    elif mcp.url:
        server = {"url": mcp.url}
        if mcp.token:
            server["http_headers"] = {"Authorization": f"Bearer {mcp.token}"}
    else:
        return None
    server["required"] = True
    server["startup_timeout_sec"] = MCP_STARTUP_TIMEOUT_SECONDS
    server["default_tools_approval_mode"] = "approve"
    if disabled:
        server["disabled_tools"] = disabled
    return server


@dataclass(frozen=True)
class CodexConfig:
    """What the run's configuration comes to: config.toml as a table, the command prefixes
    the rules file forbids, and restricted tools of MCP servers that `baseExecutor.args`
    define (agentfleet can only reach those with `-c` arguments)."""

    table: dict[str, Any]
    forbidden_prefixes: list[list[str]]
    args_mcp_disabled: dict[str, list[str]]


def config_for(spec: RunSpec) -> CodexConfig:
    table: dict[str, Any] = {
        "check_for_update_on_startup": False,
        "analytics": {"enabled": False},
        "feedback": {"enabled": False},
        "features": {"unbounded_connection_retries": False},
    }
    instructions = instructions_for(spec)
    if instructions:
        table["developer_instructions"] = instructions
    restricted, prefixes, mcp_disabled = tool_restrictions(spec)
    for key, value in restricted.items():
        if isinstance(value, dict):
            table.setdefault(key, {}).update(value)
        else:
            table[key] = value
    check_tools_enabled(spec)
    if spec.mcp:
        server = mcp_server_config(spec.mcp, mcp_disabled.pop(spec.mcp.name, []))
        if server:
            table["mcp_servers"] = {spec.mcp.name: server}
    return CodexConfig(table, prefixes, mcp_disabled)


def _config_value(text: str) -> object:
    """A `-c key=value` value as Codex reads it: TOML, else the raw text."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def config_arguments(args: list[str]) -> list[tuple[str, str]]:
    """(key, raw value) of each `-c`/`--config` among `args`, in order."""
    values: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in ("-c", "--config"):
            if index + 1 < len(args):
                values.append(args[index + 1])
            index += 1
        elif arg.startswith("--config="):
            values.append(arg.removeprefix("--config="))
        elif arg.startswith("-c") and len(arg) > 2:
            values.append(arg[2:])
        index += 1
    pairs = []
    for value in values:
        key, sep, raw = value.partition("=")
        if sep:
            pairs.append((key.strip(), raw.strip()))
    return pairs


def selected_provider(args: list[str]) -> str | None:
    """The `model_provider` that `-c`/`--config` arguments select, if any (the last wins)."""
    provider = None
    for key, raw in config_arguments(args):
        if key == "model_provider":
            parsed = _config_value(raw)
            provider = parsed if isinstance(parsed, str) else None
    return provider


def retry_overrides(args: list[str], max_retries: int) -> list[str]:
    """`-c` settings bounding the selected custom provider's retries; placed before the
    user's arguments so that their own settings for the same keys win."""
    provider = selected_provider(args)
    if provider is None or provider in BUILT_IN_PROVIDERS or not _BARE_KEY.fullmatch(provider):
        return []
    return [
        "-c",
        f"model_providers.{provider}.request_max_retries={max_retries}",
        "-c",
        f"model_providers.{provider}.stream_max_retries={max_retries}",
    ]


def mcp_restriction_overrides(args: list[str], disabled: dict[str, list[str]]) -> list[str]:
    """`-c mcp_servers.<name>.disabled_tools=[...]` for servers the user's arguments define;
    placed after them, so a restriction wins. A server nobody defines has nothing to
    restrict (an AgentConfig may name agentfleet's server in a run that has none)."""
    keys = [key for key, _ in config_arguments(args)]
    overrides: list[str] = []
    for server, tools in disabled.items():
        defined = any(key.startswith(f"mcp_servers.{server}.") for key in keys)
        if defined and _BARE_KEY.fullmatch(server):
            overrides += ["-c", f"mcp_servers.{server}.disabled_tools={toml_value(tools)}"]
    return overrides


# -- the stream -----------------------------------------------------------------------------


def turn_tokens(usage: dict[str, Any]) -> TokenUsage:
    """One `turn.completed` usage as agentfleet counts it: `input` without the cached and
    cache-write tokens that `input_tokens` includes, `output` with the reasoning tokens that
    `output_tokens` already includes."""
    total_input = as_int(usage.get("input_tokens"))
    cached = as_int(usage.get("cached_input_tokens"))
    cache_write = as_int(usage.get("cache_write_input_tokens"))
    return TokenUsage(
        input=max(0, total_input - cached - cache_write),
        output=as_int(usage.get("output_tokens")),
        cache_read=cached,
        cache_creation=cache_write,
    )


def _add(total: TokenUsage | None, more: TokenUsage) -> TokenUsage:
    if total is None:
        return more
    return TokenUsage(
        input=total.input + more.input,
        output=total.output + more.output,
        cache_read=total.cache_read + more.cache_read,
        cache_creation=total.cache_creation + more.cache_creation,
    )


def _changes(item: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"path": as_str(c.get("path")), "kind": as_str(c.get("kind"))}
        for c in as_list(item.get("changes"))
        if isinstance(c, dict)
    ]


def _changes_text(changes: list[dict[str, str]]) -> str:
    return "\n".join(f"{c['kind'] or 'change'} {c['path']}" for c in changes)


def _mcp_result_text(item: dict[str, Any]) -> str:
    error = as_dict(item.get("error"))
    if error:
        return as_str(error.get("message")) or "MCP tool call failed"
    result = as_dict(item.get("result"))
    texts = [
        as_str(block.get("text"))
        for block in as_list(result.get("content"))
        if isinstance(block, dict)
    ]
    return "\n".join(t for t in texts if t)


class CodexExecutor:
    """One run of Codex: builds its command line and home, then reads its JSONL."""

    def __init__(self) -> None:
        self._pricing: Pricing | None = None
        self._thread_id: str | None = None
        self._final_text = ""
        self._tokens: TokenUsage | None = None
        self._outcome: str | None = None  # "completed" or "failed": the last turn's end
        self._failure = ""
        self._last_error = ""

    # -- the command line ------------------------------------------------------------------

    def command(self, spec: RunSpec, prompt: str) -> Invocation:
        base = spec.agent.base_executor
        self._pricing = base.pricing
        config = config_for(spec)
        files = {CONFIG_FILE: toml_document(config.table)}
        if config.forbidden_prefixes:
            files[RULES_FILE] = rules_for(config.forbidden_prefixes)
        env = {
            "RUST_BACKTRACE": "0",
            **base.env,
            **run_environment(spec),
            "CODEX_HOME": os.path.join(spec.context_dir, HOME_DIR),
        }
        argv = [
            *cli_argv(spec, "codex"),
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--sandbox",
            sandbox_for(spec),
            "--cd",
            spec.worktree,
            "--output-last-message",
            os.path.join(spec.context_dir, LAST_MESSAGE_FILE),
        ]
        if base.model:
            argv += ["--model", base.model]
        argv += retry_overrides(base.args, base.max_retries)
        argv += base.args
        argv += mcp_restriction_overrides(base.args, config.args_mcp_disabled)
        argv.append("-")
        return Invocation(argv=argv, env=env, stdin_text=prompt, files=files)

    # -- the stream ------------------------------------------------------------------------

    def parse_line(self, line: str) -> list[AgentEvent]:
        obj = json_object(line)
        if obj is None:
            return plain_line(line)
        kind = obj.get("type")
        if kind == "thread.started":
            thread_id = obj.get("thread_id")
            if isinstance(thread_id, str):
                self._thread_id = thread_id
            return []
        if kind == "item.started":
            return self._item_started(as_dict(obj.get("item")))
        if kind == "item.completed":
            return self._item_completed(as_dict(obj.get("item")))
        if kind == "error":
            return [self._error(as_str(obj.get("message")))]
        if kind == "turn.completed":
            return [self._turn_completed(as_dict(obj.get("usage")))]
        if kind == "turn.failed":
            message = as_str(as_dict(obj.get("error")).get("message"))
            return [self._turn_failed(message)]
        return []

    def _item_started(self, item: dict[str, Any]) -> list[AgentEvent]:
        item_type = item.get("type")
        item_id = as_str(item.get("id"))
        if item_type == "command_execution":
            command = as_str(item.get("command"))
            return [
                AgentEvent(
                    type=LogEventType.TOOL_CALL,
                    text=command,
                    tool=SHELL_TOOL,
                    data={"id": item_id, "command": command},
                )
            ]
        if item_type == "file_change":
            changes = _changes(item)
            return [
                AgentEvent(
                    type=LogEventType.TOOL_CALL,
                    text=_changes_text(changes),
                    tool=PATCH_TOOL,
                    data={"id": item_id, "changes": changes},
                )
            ]
        if item_type == "mcp_tool_call":
            tool = f"mcp:{as_str(item.get('server'))}/{as_str(item.get('tool'))}"
            return [
                AgentEvent(
                    type=LogEventType.TOOL_CALL,
                    text=tool,
                    tool=tool,
                    data={"id": item_id, "arguments": item.get("arguments")},
                )
            ]
        if item_type == "web_search":
            query = as_str(item.get("query"))
            return [
                AgentEvent(
                    type=LogEventType.TOOL_CALL,
                    text=query,
                    tool="web_search",
                    data={"id": item_id, "query": query},
                )
            ]
        return []

    def _item_completed(self, item: dict[str, Any]) -> list[AgentEvent]:
        item_type = item.get("type")
        item_id = as_str(item.get("id"))
        status = as_str(item.get("status"))
        if item_type == "agent_message":
            text = as_str(item.get("text"))
            self._final_text = text
            return [AgentEvent(type=LogEventType.TEXT, text=text)] if text else []
        if item_type == "reasoning":
            text = as_str(item.get("text"))
            if not text:
                return []
            return [AgentEvent(type=LogEventType.TEXT, text=text, data={"reasoning": True})]
        if item_type == "command_execution":
            exit_code = item.get("exit_code")
            code = (
                exit_code
                if isinstance(exit_code, int) and not isinstance(exit_code, bool)
                else None
            )
            failed = status in ("failed", "declined") or (code is not None and code != 0)
            return [
                AgentEvent(
                    type=LogEventType.TOOL_RESULT,
                    text=truncate(as_str(item.get("aggregated_output"))),
                    tool=SHELL_TOOL,
                    data={"id": item_id, "exitCode": code, "isError": failed, "status": status},
                )
            ]
        if item_type == "file_change":
            changes = _changes(item)
            return [
                AgentEvent(
                    type=LogEventType.TOOL_RESULT,
                    text=_changes_text(changes),
                    tool=PATCH_TOOL,
                    data={
                        "id": item_id,
                        "changes": changes,
                        "isError": status != "completed",
                        "status": status,
                    },
                )
            ]
        if item_type == "mcp_tool_call":
            tool = f"mcp:{as_str(item.get('server'))}/{as_str(item.get('tool'))}"
            failed = status == "failed" or bool(as_dict(item.get("error")))
            return [
                AgentEvent(
                    type=LogEventType.TOOL_RESULT,
                    text=truncate(_mcp_result_text(item)),
                    tool=tool,
                    data={"id": item_id, "isError": failed, "status": status},
                )
            ]
        if item_type == "web_search":
            query = as_str(item.get("query"))
            return [
                AgentEvent(
                    type=LogEventType.TOOL_RESULT,
                    text=query,
                    tool="web_search",
                    data={"id": item_id, "query": query, "isError": False},
                )
            ]
        if item_type == "todo_list":
            entries = [e for e in as_list(item.get("items")) if isinstance(e, dict)]
            text = "\n".join(
                f"- [{'x' if e.get('completed') is True else ' '}] {as_str(e.get('text'))}"
                for e in entries
            )
            return [AgentEvent(type=LogEventType.TEXT, text=text, data={"todoList": True})]
        if item_type == "error":
            # Non-fatal: an unknown model's metadata, a fallback from WebSockets to HTTPS.
            text = as_str(item.get("message"))
            return [AgentEvent(type=LogEventType.TEXT, text=text, data={"warning": True})]
        return []

    def _error(self, message: str) -> AgentEvent:
        retry = _RECONNECTING.match(message)
        if retry:
            attempt, limit = retry["attempt"], retry["max"]
            return AgentEvent(
                type=LogEventType.RETRY,
                text=message,
                data={
                    "attempt": int(attempt) if attempt else None,
                    "maxRetries": int(limit) if limit else None,
                },
            )
        self._last_error = message
        return AgentEvent(type=LogEventType.ERROR, text=message)

    def _turn_completed(self, usage: dict[str, Any]) -> AgentEvent:
        if usage:
            self._tokens = _add(self._tokens, turn_tokens(usage))
        self._outcome = "completed"
        self._failure = ""
        return AgentEvent(
            type=LogEventType.RESULT,
            text=self._final_text,
            tokens=self._tokens,
            cost_usd=priced_cost(self._tokens, self._pricing),
            data={"isError": False, "sessionId": self._thread_id},
        )

    def _turn_failed(self, message: str) -> AgentEvent:
        self._outcome = "failed"
        self._failure = failure_message(message or self._last_error)
        return AgentEvent(
            type=LogEventType.RESULT,
            text=self._failure,
            tokens=self._tokens,
            cost_usd=priced_cost(self._tokens, self._pricing),
            data={"isError": True, "sessionId": self._thread_id},
        )

    def finish(self, exit_code: int) -> ExecutorOutcome:
        if self._outcome is None and self._thread_id is None:
            # A configuration error, a required MCP server that did not start: stderr says.
            message = f"codex exited {exit_code} before it started a thread"
            ok = False
        elif self._outcome is None:
            message = f"codex exited {exit_code} without finishing its turn (crashed or killed)"
            if self._last_error:
                message += f"; last error: {self._last_error}"
            ok = False
        else:
            ok = self._outcome == "completed"
            message = "" if ok else self._failure
        return ExecutorOutcome(
            tokens=self._tokens,
            cost_usd=priced_cost(self._tokens, self._pricing),
            text=self._final_text,
            ok=ok,
            message=message,
            session_id=self._thread_id,
        )


def failure_message(message: str) -> str:
    """What a failed turn says, with the likely fix when the API refused the credentials."""
    if not message:
        return "codex reported a failed turn"
    if _AUTH_FAILURE.search(message):
        return (
            f"authentication failed: {message} (Codex reads its key from CODEX_API_KEY, or "
            "from the custom provider's env_key; codex exec 0.169.0 ignores OPENAI_API_KEY)"
        )
    return message
