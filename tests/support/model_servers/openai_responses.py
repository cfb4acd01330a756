"""A scripted OpenAI Responses API on 127.0.0.1, so the real `codex` CLI runs without internet.

Codex (0.169.0) talks to a custom model provider with `POST {base_url}/responses` and
`stream: true`, and reads Server-Sent Events. The server answers each such request with the
next turn of the script, streamed as the Responses API does (`response.created`,
`response.output_item.added`/`.done`, `response.output_text.delta`, `response.completed`
with usage), and records every request so a test can check what Codex sent: the tools it
offered the model, the developer instructions, the outputs of earlier tool calls.

    with serve([function_call("exec_command", {"cmd": "ls"}), text("Done.")]) as server:
        args = codex_provider_args(server)  # `-c model_provider=...`: baseExecutor.args
        env = codex_provider_env()  # the dummy key the provider reads: baseExecutor.env
        server.model_requests[0].tool_names()

A turn is `text(...)`, `function_call(name, arguments)` (Codex's shell is `exec_command`
with `{"cmd": ...}` for catalog models such as gpt-5.5), `custom_tool_call("apply_patch",
patch)`, `reply(...)` for several items in one response (with `reasoning(...)`,
`tool_search_call(...)`, `namespaced_call(...)` for MCP tools), or `http_error(401)`, which
answers every later request too (a bad key stays bad). Unknown paths answer 404 (recorded
too), a WebSocket upgrade answers 426 so that a client trying one falls back to HTTPS at once;
an exhausted script answers 400, which Codex does not retry, so a test that scripted too
few turns fails fast instead of hanging.

Re-record the parser tests' CLI output (tests/unit/executors/recordings/codex/) with

    .venv/bin/python -m tests.support.model_servers.openai_responses record [SCENARIO ...]
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.model_servers.recording import main, record_scenarios

PROVIDER = "scripted"
API_KEY_ENV = "AGENTFLEET_TEST_OPENAI_KEY"
API_KEY = "sk-scripted-test-key"


@dataclass(frozen=True)
class Usage:
    """What `response.completed` reports; Codex's `turn.completed` sums these per turn."""

    input_tokens: int = 100
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 20
    reasoning_tokens: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {
                "cached_tokens": self.cached_input_tokens,
                "cache_write_tokens": self.cache_write_tokens,
            },
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.input_tokens + self.output_tokens,
        }


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class FunctionCall:
    name: str
    arguments: str
    call_id: str


@dataclass(frozen=True)
class CustomToolCall:
    """A call of a freeform tool (Codex's `apply_patch`): raw text input, no JSON."""

    name: str
    input: str
    call_id: str


@dataclass(frozen=True)
class RawItem:
    """An output item passed through as given, for item kinds without a helper."""

    item: dict[str, Any]


OutputItem = Text | FunctionCall | CustomToolCall | RawItem


@dataclass(frozen=True)
class Reply:
    """One streamed response: its output items in order, then `response.completed`."""

    items: tuple[OutputItem, ...]
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class HttpError:
    """A non-streamed error answer; `repeat` keeps answering it once the script reaches it."""

    status: int
    message: str
    code: str | None = None
    repeat: bool = True


Turn = Reply | HttpError

_call_ids = itertools.count(1)


def text(content: str, usage: Usage | None = None) -> Reply:
    """A turn where the model answers in text and so ends Codex's turn."""
    return Reply((Text(content),), usage or Usage())


def function_call(name: str, arguments: dict[str, Any] | str, usage: Usage | None = None) -> Reply:
    """A turn where the model calls one of the tools Codex offered (see `tool_names`)."""
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return Reply((FunctionCall(name, raw, f"call_{next(_call_ids)}"),), usage or Usage())


def custom_tool_call(name: str, input_text: str, usage: Usage | None = None) -> Reply:
    """A turn calling a freeform tool, e.g. `apply_patch` with a `*** Begin Patch` text."""
    return Reply((CustomToolCall(name, input_text, f"call_{next(_call_ids)}"),), usage or Usage())


def raw_items(*items: dict[str, Any], usage: Usage | None = None) -> Reply:
    return Reply(tuple(RawItem(item) for item in items), usage or Usage())


def reply(*items: OutputItem | Reply, usage: Usage | None = None) -> Reply:
    """One response with several output items (reasoning, then a call, say)."""
    flat: list[OutputItem] = []
    for item in items:
        flat.extend(item.items if isinstance(item, Reply) else (item,))
    return Reply(tuple(flat), usage or Usage())


def reasoning(summary: str) -> RawItem:
    """A reasoning item; Codex shows its summary as a `reasoning` item."""
    return RawItem(
        {
            "type": "reasoning",
            "id": f"rs_{next(_call_ids)}",
            "summary": [{"type": "summary_text", "text": summary}],
        }
    )


def tool_search_call(query: str) -> RawItem:
    """Codex 0.169.0 offers MCP tools only through its client-side `tool_search`: the model
    searches, and the next request carries the matches as a `tool_search_output`."""
    return RawItem(
        {
            "type": "tool_search_call",
            "call_id": f"ts_{next(_call_ids)}",
            "execution": "client",
            "arguments": {"query": query},
            "status": "completed",
        }
    )


def namespaced_call(namespace: str, name: str, arguments: dict[str, Any]) -> RawItem:
    """A call of a tool that `tool_search` exposed, e.g. MCP tools in `mcp__<server>`."""
    return RawItem(
        {
            "type": "function_call",
            "call_id": f"call_{next(_call_ids)}",
            "namespace": namespace,
            "name": name,
            "arguments": json.dumps(arguments),
            "status": "completed",
        }
    )


def http_error(status: int = 401, message: str = "Incorrect API key provided") -> HttpError:
    code = "invalid_api_key" if status == 401 else None
    return HttpError(status, message, code)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    def tool_names(self) -> list[str]:
        """Names of the tools offered to the model: function, custom and built-in tools
        (`web_search`), namespaced ones as `namespace.name`. Models of the code-mode family
        get theirs in an `additional_tools` input item instead of `tools`: both count."""
        if not isinstance(self.body, dict):
            return []
        tools = list(self.body.get("tools", []))
        for item in self.body.get("input", []):
            if isinstance(item, dict) and item.get("type") == "additional_tools":
                tools.extend(item.get("tools", []))
        names: list[str] = []

        def walk(entries: list[Any], prefix: str) -> None:
            for tool in entries:
                if not isinstance(tool, dict):
                    continue
                name = str(tool.get("name") or tool.get("type"))
                if tool.get("type") == "namespace":
                    walk(tool.get("tools", []), f"{prefix}{name}.")
                else:
                    names.append(prefix + name)

        walk(tools, "")
        return names

    def function_outputs(self) -> list[str]:
        """The outputs Codex sent back for earlier tool calls, in order."""
        items = self.body.get("input", []) if isinstance(self.body, dict) else []
        kinds = ("function_call_output", "custom_tool_call_output")
        return [
            str(item.get("output"))
            for item in items
            if isinstance(item, dict) and item.get("type") in kinds
        ]

    def developer_texts(self) -> list[str]:
        """Every developer-message text, where Codex puts `developer_instructions`."""
        items = self.body.get("input", []) if isinstance(self.body, dict) else []
        return [
            str(part.get("text"))
            for item in items
            if isinstance(item, dict) and item.get("role") == "developer"
            for part in item.get("content", [])
            if isinstance(part, dict) and "text" in part
        ]


class ScriptedServer:
    """The running server: `base_url` for the provider, `requests` as Codex sent them."""

    def __init__(self, turns: Sequence[Turn]) -> None:
        self._turns = list(turns)
        self._next = 0
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def model_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/responses")]

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def next_turn(self) -> Turn | None:
        with self._lock:
            if self._next < len(self._turns):
                turn = self._turns[self._next]
                self._next += 1
                return turn
            last = self._turns[-1] if self._turns else None
            if isinstance(last, HttpError) and last.repeat:
                return last
            return None


@contextmanager
def serve(turns: Sequence[Turn]) -> Iterator[ScriptedServer]:
    server = ScriptedServer(turns).start()
    try:
        yield server
    finally:
        server.stop()


def codex_provider_config(
    server: ScriptedServer,
    *,
    request_max_retries: int | None = None,
    stream_max_retries: int | None = None,
) -> dict[str, Any]:
    """The `model_providers.<id>` table that points Codex at `server`.

    WebSockets are off so the first request is already the HTTPS one. Retries are left to
    the executor (`baseExecutor.maxRetries`) unless given here, where they win over it.
    """
    config: dict[str, Any] = {
        "name": "Scripted test server",
        "base_url": server.base_url,
        "env_key": API_KEY_ENV,
        "wire_api": "responses",
        "stream_idle_timeout_ms": 20_000,
        "supports_websockets": False,
    }
    if request_max_retries is not None:
        config["request_max_retries"] = request_max_retries
    if stream_max_retries is not None:
        config["stream_max_retries"] = stream_max_retries
    return config


def codex_provider_args(server: ScriptedServer, **retries: int) -> list[str]:
    """`-c` arguments selecting the scripted provider, as an AgentConfig's `args` would."""
    args = ["-c", f"model_provider={json.dumps(PROVIDER)}"]
    for key, value in codex_provider_config(server, **retries).items():
        args += ["-c", f"model_providers.{PROVIDER}.{key}={json.dumps(value)}"]
    return args


def codex_provider_env() -> dict[str, str]:
    """The provider's key: a dummy the server ignores, but Codex refuses to start without one."""
    return {API_KEY_ENV: API_KEY}


def _sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def _reply_events(reply: Reply, response_id: str, model: str) -> Iterator[dict[str, Any]]:
    """The SSE events of one response, in the order the Responses API streams them."""
    response = {"id": response_id, "object": "response", "model": model, "status": "in_progress"}
    yield {"type": "response.created", "response": response}
    for index, item in enumerate(reply.items):
        if isinstance(item, Text):
            item_id = f"msg_{response_id}_{index}"
            started = {
                "type": "message",
                "id": item_id,
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            }
            yield {"type": "response.output_item.added", "output_index": index, "item": started}
            yield {
                "type": "response.output_text.delta",
                "item_id": item_id,
                "output_index": index,
                "content_index": 0,
                "delta": item.text,
            }
            done = {
                **started,
                "status": "completed",
                "content": [{"type": "output_text", "text": item.text, "annotations": []}],
            }
            yield {"type": "response.output_item.done", "output_index": index, "item": done}
        elif isinstance(item, RawItem):
            yield {"type": "response.output_item.added", "output_index": index, "item": item.item}
            yield {"type": "response.output_item.done", "output_index": index, "item": item.item}
        elif isinstance(item, CustomToolCall):
            call = {
                "type": "custom_tool_call",
                "id": f"ctc_{response_id}_{index}",
                "call_id": item.call_id,
                "name": item.name,
                "input": item.input,
                "status": "completed",
            }
            yield {"type": "response.output_item.added", "output_index": index, "item": call}
            yield {"type": "response.output_item.done", "output_index": index, "item": call}
        else:
            call = {
                "type": "function_call",
                "id": f"fc_{response_id}_{index}",
                "call_id": item.call_id,
                "name": item.name,
                "arguments": item.arguments,
                "status": "completed",
            }
            yield {"type": "response.output_item.added", "output_index": index, "item": call}
            yield {"type": "response.output_item.done", "output_index": index, "item": call}
    completed = {**response, "status": "completed", "usage": reply.usage.as_json()}
    yield {"type": "response.completed", "response": completed}


def _handler_for(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    responses = itertools.count(1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: pytest would show every request as stderr noise."""

        def _read_body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if not raw:
                return None
            try:
                return json.loads(raw)
            except ValueError:
                return raw.decode("utf-8", errors="replace")

        def _record(self, body: Any) -> None:
            server.record(
                RecordedRequest(self.command, self.path, dict(self.headers.items()), body)
            )

        def _json(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._record(None)
            if self.headers.get("Upgrade", "").lower() == "websocket":
                self._json(426, {"error": {"message": "no WebSocket here, use HTTPS"}})
            elif self.path.split("?")[0].endswith("/models"):
                self._json(200, {"object": "list", "data": [], "models": []})
            else:
                self._json(404, {"error": {"message": f"not scripted: GET {self.path}"}})

        def do_POST(self) -> None:
            body = self._read_body()
            self._record(body)
            if not self.path.split("?")[0].endswith("/responses"):
                self._json(404, {"error": {"message": f"not scripted: POST {self.path}"}})
                return
            turn = server.next_turn()
            if turn is None:
                error = {"message": "the scripted server has no turn left", "type": "test_error"}
                self._json(400, {"error": error})
                return
            if isinstance(turn, HttpError):
                error = {"message": turn.message, "type": "invalid_request_error"}
                if turn.code:
                    error["code"] = turn.code
                self._json(turn.status, {"error": error})
                return
            model = body.get("model", "") if isinstance(body, dict) else ""
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            response_id = f"resp_{next(responses)}"
            for event in _reply_events(turn, response_id, str(model)):
                self.wfile.write(_sse(event))
                self.wfile.flush()

    return Handler


# -- recordings of the real CLI for the parser tests ----------------------------------------

RECORDINGS = Path(__file__).resolve().parents[2] / "unit" / "executors" / "recordings" / "codex"
RECORDING_MODEL = "gpt-5.5"
"""A model in Codex's catalog without code mode: its tools are plain functions (exec_command,
apply_patch), which a script can call. The catalog's default (gpt-6.1-sol) exposes one
JavaScript `exec` tool instead."""

WORKTREE_PLACEHOLDER = "/work/tree"
_PORT = re.compile(r"127\.0\.0\.1:\d+")
_CACHED = Usage(input_tokens=1200, cached_input_tokens=800, output_tokens=60, reasoning_tokens=20)


@dataclass(frozen=True)
class Scenario:
    turns: tuple[Turn, ...]
    model: str = RECORDING_MODEL
    mcp: bool = False
    kill_after: str | None = None
    """Kill the CLI's process group once a stdout line contains this: a crash mid-run."""


SCENARIOS: dict[str, Scenario] = {
    # A command that writes a file, an apply_patch edit, a failing command, the answer.
    "success_command": Scenario(
        (
            reply(
                reasoning("**Writing the file** first"),
                function_call("exec_command", {"cmd": "printf 'hello\\n' > hello.txt"}),
                usage=_CACHED,
            ),
            custom_tool_call(
                "apply_patch",
                "*** Begin Patch\n*** Update File: hello.txt\n@@\n-hello\n+hello world\n"
                "*** End Patch\n",
                usage=_CACHED,
            ),
            function_call("exec_command", {"cmd": "cat hello.txt && ls missing.txt"}),
            text("Wrote hello.txt.", usage=_CACHED),
        )
    ),
    # 401 on every request: two "Reconnecting..." retries (maxRetries 2), then turn.failed.
    "auth_failure": Scenario((http_error(401),)),
    # The CLI is killed while a command runs: no turn.completed, exit 137.
    "crash": Scenario(
        (function_call("exec_command", {"cmd": "sleep 30"}),),
        kill_after='"type":"item.started"',
    ),
    # agentfleet's MCP server (the echo test server): tool_search, then the MCP call.
    "mcp_echo": Scenario(
        (
            reply(tool_search_call("echo")),
            reply(namespaced_call("mcp__agentfleet", "echo", {"text": "ping"})),
            text("The server said: echo: ping"),
        ),
        mcp=True,
    ),
    # A model missing from Codex's catalog: a non-fatal `error` item, then a normal turn.
    "model_warning": Scenario((text("Hello."),), model="scripted-model"),
}


def _recording_spec(scenario: Scenario, tmp: Path, server: ScriptedServer, cli: Path) -> Any:
    from agentfleet.models.agent import AgentConfigSpec, BaseExecutor, ExecutorType
    from agentfleet.models.meta import AgentType
    from agentfleet.runner.spec import McpServer, RunSpec

    worktree = tmp / "tree"
    worktree.mkdir()
    echo = Path(__file__).with_name("echo_mcp.py")
    return RunSpec(
        name="t1-dev-1",
        task="t1",
        stage="dev",
        attempt=1,
        agent_name="dev-agent",
        agent=AgentConfigSpec(
            agent_type=AgentType.DEVELOPMENT,
            base_executor=BaseExecutor(
                type=ExecutorType.CODEX,
                command=[str(cli)],
                model=scenario.model,
                env=codex_provider_env(),
                args=codex_provider_args(server),
            ),
            specialized_instructions="Write small, tested changes.",
        ),
        worktree=str(worktree),
        context_dir=str(tmp / "context"),
        mcp=McpServer(command=[sys.executable, str(echo)]) if scenario.mcp else None,
    )


def _kill_when(proc: subprocess.Popen[str], marker: str, lines: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if marker in line:
            os.killpg(proc.pid, signal.SIGKILL)


def record_one(name: str, scenario: Scenario, cli: Path) -> int:
    """Run the real CLI as `CodexExecutor.command` starts it; keep its stdout, with the
    temporary worktree path and the server's port made stable."""
    from agentfleet.executors.codex import CodexExecutor
    from agentfleet.runner.context import write_context

    with tempfile.TemporaryDirectory(prefix="codex-rec-") as tmp, serve(scenario.turns) as server:
        spec = _recording_spec(scenario, Path(tmp), server, cli)
        prompt = "Write hello.txt containing hello world."
        invocation = CodexExecutor().command(spec, prompt)
        write_context(spec, prompt, invocation.files)
        proc = subprocess.Popen(
            invocation.argv,
            cwd=spec.worktree,
            env=invocation.environment(os.environ),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        assert proc.stdin is not None
        proc.stdin.write(invocation.stdin_text)
        proc.stdin.close()
        lines: list[str] = []
        _kill_when(proc, scenario.kill_after or "\0", lines)
        code = proc.wait(timeout=120)
        stdout = "".join(lines).replace(spec.worktree, WORKTREE_PLACEHOLDER)
    RECORDINGS.mkdir(parents=True, exist_ok=True)
    (RECORDINGS / f"{name}.jsonl").write_text(_PORT.sub("127.0.0.1:PORT", stdout), "utf-8")
    return 128 - code if code < 0 else code


def record(names: Sequence[str]) -> None:
    record_scenarios("codex", names, SCENARIOS, record_one, RECORDINGS)


if __name__ == "__main__":
    main(__spec__.name if __spec__ else "openai_responses", SCENARIOS, record)
