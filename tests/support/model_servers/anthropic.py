"""A scripted Anthropic Messages API on 127.0.0.1, so the real `claude` CLI runs without internet.

The CLI cannot tell it from the real API: it answers `POST /v1/messages` with the same SSE
events (or one JSON message when the request does not stream), so every line the CLI prints
in these tests is real CLI output and only the model's turns are scripted.

    with serve([tool_use("Bash", {"command": "ls"}), text("Done.")]) as server:
        env = server.env()  # ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY
        ...
        server.main_requests[0].tool_names  # what the CLI offered the model

A turn is `text(...)`, `tool_use(...)`, `reply(block, block, ...)`, `http_error(...)`, or a
callable that gets the request body and returns one of those (to answer from the previous
tool_result). Only main-loop requests (those that offer tools: the main agent's and its
sub-agents') consume turns. Claude Code 2.1.331 in print mode sends nothing else to
ANTHROPIC_BASE_URL (not even with CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC unset), but other
versions and modes make side requests without tools (session titles, summaries, a quota
probe) or count tokens: those get a harmless answer and are only recorded, so a script does
not depend on which side requests a CLI version happens to make. When the script runs out,
the server answers with `EXHAUSTED_TEXT` and sets `exhausted`, so a test that scripted too
few turns fails on an assertion instead of hanging in retries.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_KEY = "test-key"
EXHAUSTED_TEXT = "(the scripted model has no more turns)"
SIDE_REPLY_TEXT = "Scripted side reply"
JSON_CHUNK = 16  # input_json_delta pieces, small so the CLI really reassembles partial JSON


@dataclass(frozen=True)
class Usage:
    """What the model reports for one turn; the CLI prices it into `total_cost_usd`."""

    input_tokens: int = 120
    output_tokens: int = 30
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0

    def wire(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
        }


@dataclass(frozen=True)
class TextBlock:
    text: str


@dataclass(frozen=True)
class ToolUseBlock:
    name: str
    input: dict[str, Any]
    id: str | None = None


Block = TextBlock | ToolUseBlock


@dataclass(frozen=True)
class Reply:
    """One model response: its content blocks in order, and why it stopped."""

    blocks: tuple[Block, ...]
    usage: Usage = field(default_factory=Usage)
    stop_reason: str | None = None

    @property
    def resolved_stop_reason(self) -> str:
        if self.stop_reason is not None:
            return self.stop_reason
        return "tool_use" if any(isinstance(b, ToolUseBlock) for b in self.blocks) else "end_turn"


@dataclass(frozen=True)
class HttpError:
    """The API refusing a request, with the error body the real API sends."""

    status: int
    error_type: str
    message: str

    def body(self) -> dict[str, Any]:
        return {
            "type": "error",
            "error": {"type": self.error_type, "message": self.message},
            "request_id": "req_scripted",
        }


Answer = Reply | HttpError
Turn = Answer | Callable[[dict[str, Any]], Answer]


def text(value: str, *, usage: Usage | None = None) -> Reply:
    return Reply((TextBlock(value),), usage or Usage())


def tool_use(
    name: str, input: dict[str, Any], *, id: str | None = None, usage: Usage | None = None
) -> Reply:
    return Reply((ToolUseBlock(name, input, id),), usage or Usage())


def reply(*blocks: Block, usage: Usage | None = None, stop_reason: str | None = None) -> Reply:
    return Reply(tuple(blocks), usage or Usage(), stop_reason)


def http_error(status: int, error_type: str, message: str) -> HttpError:
    return HttpError(status, error_type, message)


def authentication_error() -> HttpError:
    return HttpError(401, "authentication_error", "invalid x-api-key")


@dataclass(frozen=True)
class Request:
    """One request as the CLI sent it; `main` says whether it consumed a script turn."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    main: bool

    @property
    def tool_names(self) -> list[str]:
        tools = self.body.get("tools") if isinstance(self.body, dict) else None
        return [t.get("name", "") for t in tools or [] if isinstance(t, dict)]

    def tool(self, name: str) -> dict[str, Any] | None:
        tools = self.body.get("tools") if isinstance(self.body, dict) else None
        for tool in tools or []:
            if isinstance(tool, dict) and tool.get("name") == name:
                return tool
        return None

    @property
    def system_text(self) -> str:
        """The system prompt as one string, whether sent as a string or as text blocks."""
        system = self.body.get("system") if isinstance(self.body, dict) else None
        if isinstance(system, str):
            return system
        return "\n".join(
            b.get("text", "") for b in system or [] if isinstance(b, dict) and "text" in b
        )

    @property
    def all_text(self) -> str:
        """Everything textual in the request (system, messages, tool descriptions)."""
        return json.dumps(self.body, ensure_ascii=False)


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool_result blocks of a request's last user message (what the tools answered)."""
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, list):
            found = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
            if found:
                return found
    return []


def result_text(block: dict[str, Any]) -> str:
    """A tool_result's content as text (the API allows a string or a list of blocks)."""
    content = block.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def is_main_loop(path: str, body: Any) -> bool:
    """A request of the agent's conversation (main agent or sub-agent), not a side request.

    Claude Code's side requests (session titles, summaries, a quota probe) offer no tools;
    the conversation always does, if only its deferred-tool placeholder. Token counting has
    its own path.
    """
    if not path.startswith("/v1/messages") or "count_tokens" in path:
        return False
    return isinstance(body, dict) and bool(body.get("tools"))


class ScriptedModel:
    """The script and the request log, shared by the handler threads."""

    def __init__(self, turns: Sequence[Turn]) -> None:
        self._turns = list(turns)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.requests: list[Request] = []
        self.exhausted = False
        self.errors: list[str] = []

    def next_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}_scripted{next(self._ids):04d}"

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def take(self, body: dict[str, Any]) -> Answer:
        with self._lock:
            if not self._turns:
                self.exhausted = True
                return text(EXHAUSTED_TEXT)
            turn = self._turns.pop(0)
        if isinstance(turn, Reply | HttpError):
            return turn
        return turn(body)


def _message(model: str, message_id: str, answer: Reply, ids: list[str]) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for block, block_id in zip(answer.blocks, ids, strict=True):
        if isinstance(block, TextBlock):
            content.append({"type": "text", "text": block.text})
        else:
            content.append(
                {"type": "tool_use", "id": block_id, "name": block.name, "input": block.input}
            )
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": answer.resolved_stop_reason,
        "stop_sequence": None,
        "usage": answer.usage.wire(),
    }


def _sse_events(
    model: str, message_id: str, answer: Reply, ids: list[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The event sequence of the real streaming API for one message."""
    usage = answer.usage
    start_usage = {**usage.wire(), "output_tokens": 1}
    yield (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            },
        },
    )
    for index, (block, block_id) in enumerate(zip(answer.blocks, ids, strict=True)):
        if isinstance(block, TextBlock):
            start: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": block.text}]
        else:
            start = {"type": "tool_use", "id": block_id, "name": block.name, "input": {}}
            raw = json.dumps(block.input)
            deltas = [
                {"type": "input_json_delta", "partial_json": raw[i : i + JSON_CHUNK]}
                for i in range(0, len(raw), JSON_CHUNK)
            ]
        yield (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": start},
        )
        for delta in deltas:
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": answer.resolved_stop_reason, "stop_sequence": None},
            "usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cache_read_input_tokens": usage.cache_read_input_tokens,
                "cache_creation_input_tokens": usage.cache_creation_input_tokens,
            },
        },
    )
    yield "message_stop", {"type": "message_stop"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `requests` instead of a log on stderr."""

    def _read_body(self) -> Any:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", errors="replace")

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", "req_scripted")
        self.end_headers()
        self.wfile.write(data)

    def _record(self, body: Any, main: bool) -> None:
        path = self.path
        self.server.model.record(
            Request(self.command, path, {k.lower(): v for k, v in self.headers.items()}, body, main)
        )

    def do_GET(self) -> None:
        self._record(None, main=False)
        self._send_json(404, {"type": "error", "error": {"type": "not_found_error"}})

    def do_POST(self) -> None:
        body = self._read_body()
        if self.path.startswith("/v1/messages/count_tokens"):
            self._record(body, main=False)
            self._send_json(200, {"input_tokens": 100})
            return
        if not self.path.startswith("/v1/messages") or not isinstance(body, dict):
            self._record(body, main=False)
            self._send_json(404, {"type": "error", "error": {"type": "not_found_error"}})
            return
        main = is_main_loop(self.path, body)
        self._record(body, main)
        model = self.server.model
        if main:
            try:
                answer = model.take(body)
            except Exception as exc:  # a broken callable turn: say so, don't hang the CLI
                model.errors.append(f"{type(exc).__name__}: {exc}")
                answer = http_error(500, "api_error", f"script error: {exc}")
        else:
            answer = text(SIDE_REPLY_TEXT, usage=Usage(input_tokens=10, output_tokens=3))
        if isinstance(answer, HttpError):
            self._send_json(answer.status, answer.body())
            return
        message_id = model.next_id("msg")
        ids = [
            (b.id or model.next_id("toolu")) if isinstance(b, ToolUseBlock) else ""
            for b in answer.blocks
        ]
        name = str(body.get("model") or "claude-scripted")
        if not body.get("stream"):
            self._send_json(200, _message(name, message_id, answer, ids))
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("request-id", "req_scripted")
        self.send_header("connection", "close")
        self.end_headers()
        for event, data in _sse_events(name, message_id, answer, ids):
            self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, model: ScriptedModel) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.model = model


@dataclass
class ScriptedServer:
    """The running server: where it listens and what it was asked."""

    base_url: str
    model: ScriptedModel

    @property
    def requests(self) -> list[Request]:
        return list(self.model.requests)

    @property
    def main_requests(self) -> list[Request]:
        return [r for r in self.model.requests if r.main]

    @property
    def exhausted(self) -> bool:
        return self.model.exhausted

    def env(self) -> dict[str, str]:
        return {"ANTHROPIC_BASE_URL": self.base_url, "ANTHROPIC_API_KEY": API_KEY}


@contextmanager
def serve(turns: Sequence[Turn]) -> Iterator[ScriptedServer]:
    """The server on a free port for the `with` block; closed (threads ended) after it."""
    model = ScriptedModel(turns)
    httpd = _Server(model)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    host, port = httpd.server_address[:2]
    try:
        yield ScriptedServer(f"http://{host!s}:{port}", model)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
