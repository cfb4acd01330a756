"""A scripted Gemini API on 127.0.0.1, so the real `gemini` CLI runs without internet.

The CLI (0.61.0, `gemini-api-key` auth with GOOGLE_GEMINI_BASE_URL) talks the public
Generative Language API through @google/genai, and cannot tell this server from it:

    with serve([call("write_file", file_path="a.txt", content="a\\n"), text("Done.")]) as s:
        env = s.env()  # GOOGLE_GEMINI_BASE_URL, GEMINI_API_KEY
        ...
        s.main_requests[0].function_names()  # the tools the CLI offered the model

* `POST /v1beta/models/{model}:streamGenerateContent?alt=sse` with function declarations is
  the agent loop: it takes the next scripted turn, answered as server-sent events of
  GenerateContentResponse chunks (the text in two deltas, then the function calls with
  `finishReason` and `usageMetadata`), as the real API streams.
* Requests without function declarations are the CLI's side questions (the `auto` model
  router's complexity classifier, loop detection, next-speaker checks, summaries). They
  never take a turn: one that asks for JSON (`responseMimeType`/`responseJsonSchema`) gets
  the smallest object its schema accepts, any other a short text.
* `:countTokens` gets an estimate; any other path is recorded and answered `{}`.

A turn is `text(...)`, `call(...)`, `reply(...)` (text and calls together) or
`http_error(...)`. An error with `times=None` answers every later main request too (a bad
key stays bad); with `times=n` it answers n requests, then the script moves on. When the
script runs out the server answers `EXHAUSTED_TEXT` and sets `exhausted`, so a test that
scripted too few turns fails on an assertion instead of looping.

Re-record the parser tests' CLI output (tests/unit/executors/recordings/gemini/) with

    .venv/bin/python -m tests.support.model_servers.gemini record [SCENARIO ...]
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.model_servers.recording import main, record_scenarios

if TYPE_CHECKING:
    from agentfleet.runner.spec import RunSpec

API_KEY = "test-key"
EXHAUSTED_TEXT = "(the scripted model has no more turns)"
SIDE_REPLY_TEXT = "Scripted side reply"
MODEL_PATH = re.compile(r"^/(?P<version>v1[a-z0-9]*)/models/(?P<model>[^:/]+):(?P<method>\w+)$")
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass(frozen=True)
class Usage:
    """A turn's `usageMetadata`: fixed numbers, so tests can assert what the CLI sums."""

    prompt: int = 1000
    output: int = 20
    cached: int = 0
    thoughts: int = 0

    def wire(self) -> dict[str, int]:
        metadata = {
            "promptTokenCount": self.prompt,
            "candidatesTokenCount": self.output,
            "totalTokenCount": self.prompt + self.output + self.thoughts,
        }
        if self.cached:
            metadata["cachedContentTokenCount"] = self.cached
        if self.thoughts:
            metadata["thoughtsTokenCount"] = self.thoughts
        return metadata


@dataclass(frozen=True)
class FunctionCall:
    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """One model answer: text (streamed in two deltas) and/or function calls, in that order."""

    text: str = ""
    calls: tuple[FunctionCall, ...] = ()
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class HttpError:
    """The API refusing a request, with the error body Google's APIs send."""

    status: int = 401
    message: str = "API key not valid. Please pass a valid API key."
    times: int | None = None

    def body(self) -> dict[str, Any]:
        status = STATUS_NAMES.get(self.status, "UNKNOWN")
        return {"error": {"code": self.status, "message": self.message, "status": status}}


Turn = Reply | HttpError


def text(value: str, *, usage: Usage | None = None) -> Reply:
    return Reply(text=value, usage=usage or Usage())


def call(name: str, *, usage: Usage | None = None, **args: Any) -> Reply:
    return Reply(calls=(FunctionCall(name, args),), usage=usage or Usage())


def reply(value: str, *calls: FunctionCall, usage: Usage | None = None) -> Reply:
    return Reply(text=value, calls=calls, usage=usage or Usage())


def http_error(status: int = 401, message: str = "", *, times: int | None = None) -> HttpError:
    return HttpError(status, message or HttpError.message, times)


@dataclass(frozen=True)
class Request:
    """One request as the CLI sent it; `main` says whether it took a script turn."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    main: bool
    model: str = ""

    def _body(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {}

    def function_names(self) -> list[str]:
        """The tools the CLI offered the model in this request."""
        return [
            declaration.get("name", "")
            for tool in self._body().get("tools") or []
            for declaration in tool.get("functionDeclarations") or []
        ]

    def system_text(self) -> str:
        instruction = self._body().get("systemInstruction") or {}
        return "\n".join(p.get("text", "") for p in instruction.get("parts") or [])

    def user_text(self) -> str:
        """All text of the `user` turns, in order: the context, the prompt."""
        return "\n".join(
            part["text"]
            for content in self._body().get("contents") or []
            if content.get("role") == "user"
            for part in content.get("parts") or []
            if "text" in part
        )

    def function_responses(self) -> list[dict[str, Any]]:
        """What the tools answered, as the CLI sends it back to the model."""
        return [
            part["functionResponse"]
            for content in self._body().get("contents") or []
            for part in content.get("parts") or []
            if "functionResponse" in part
        ]


def declares_functions(body: Any) -> bool:
    """The agent loop (main agent or a sub-agent) always offers tools; side questions never."""
    return isinstance(body, dict) and any(
        isinstance(tool, dict) and tool.get("functionDeclarations")
        for tool in body.get("tools") or []
    )


class ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, turns: Sequence[Turn]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self._turns = list(turns)
        self._next = 0
        self._errors_served = 0
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self.exhausted = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    @property
    def main_requests(self) -> list[Request]:
        return [r for r in self.requests if r.main]

    def env(self) -> dict[str, str]:
        return {"GOOGLE_GEMINI_BASE_URL": self.base_url, "GEMINI_API_KEY": API_KEY}

    def record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    def take(self) -> Turn:
        with self._lock:
            if self._next >= len(self._turns):
                self.exhausted = True
                return text(EXHAUSTED_TEXT)
            turn = self._turns[self._next]
            if isinstance(turn, HttpError):
                if turn.times is not None:
                    self._errors_served += 1
                    if self._errors_served >= turn.times:
                        self._next, self._errors_served = self._next + 1, 0
            else:
                self._next += 1
            return turn


def _chunk(parts: list[dict[str, Any]], model: str, usage: Usage | None) -> dict[str, Any]:
    """One GenerateContentResponse; the last of a stream carries finishReason and usage."""
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    chunk: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
    if usage is not None:
        candidate["finishReason"] = "STOP"
        chunk["usageMetadata"] = usage.wire()
    return chunk


def reply_chunks(answer: Reply, model: str) -> list[dict[str, Any]]:
    """The text in two deltas (so the CLI really streams), then the calls and the usage."""
    pieces = [answer.text[: len(answer.text) // 2], answer.text[len(answer.text) // 2 :]]
    text_parts = [[{"text": piece}] for piece in pieces if piece]
    call_parts = [{"functionCall": {"name": c.name, "args": c.args}} for c in answer.calls]
    if call_parts:
        chunks = [_chunk(parts, model, None) for parts in text_parts]
        return [*chunks, _chunk(call_parts, model, answer.usage)]
    if not text_parts:
        return [_chunk([{"text": ""}], model, answer.usage)]
    chunks = [_chunk(parts, model, None) for parts in text_parts[:-1]]
    return [*chunks, _chunk(text_parts[-1], model, answer.usage)]


def _merged(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """A non-streaming answer: every chunk's parts in one response."""
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    last = dict(chunks[-1])
    last["candidates"] = [{**last["candidates"][0], "content": {"role": "model", "parts": parts}}]
    return last


def fitting(schema: Any) -> Any:
    """A minimal value a JSON schema accepts: first enum value, minimum, required keys."""
    if not isinstance(schema, dict):
        return {}
    if schema.get("enum"):
        return schema["enum"][0]
    kind = str(schema.get("type", "object")).lower()
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: fitting(properties.get(name, {})) for name in schema.get("required") or []}
    if kind == "array":
        return [fitting(schema.get("items"))] * int(schema.get("minItems") or 0)
    if kind in ("integer", "number"):
        # 1 without a minimum: the router's complexity score (1-100) has its range only in
        # the description, and rejects 0.
        return schema.get("minimum", 1)
    if kind == "boolean":
        return False
    return ""


def side_answer(body: Any, model: str) -> dict[str, Any]:
    """A harmless answer to a request outside the agent loop."""
    config = (body.get("generationConfig") if isinstance(body, dict) else None) or {}
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    if schema is not None or config.get("responseMimeType") == "application/json":
        answer = json.dumps(fitting(schema or {"type": "object"}))
    else:
        answer = SIDE_REPLY_TEXT
    return _chunk([{"text": answer}], model, Usage(prompt=10, output=5))


class _Handler(BaseHTTPRequestHandler):
    server: ScriptedServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the tests read `requests`; access lines on stderr help no one

    def do_GET(self) -> None:
        self._record(None, main=False)
        self._json(200, {})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        match = MODEL_PATH.match(self.path.partition("?")[0])
        if match is None:
            self._record(body, main=False)
            self._json(200, {})
            return
        model, method = match["model"], match["method"]
        generates = method in ("generateContent", "streamGenerateContent")
        main = generates and declares_functions(body)
        self._record(body, main=main, model=model)
        if method == "countTokens":
            self._json(200, {"totalTokens": max(1, len(raw) // 4)})
            return
        if not generates:
            self._json(200, {})
            return
        if main:
            turn = self.server.take()
            if isinstance(turn, HttpError):
                self._json(turn.status, turn.body())
                return
            chunks = reply_chunks(turn, model)
        else:
            chunks = [side_answer(body, model)]
        if method == "streamGenerateContent":
            self._sse(chunks)
        else:
            self._json(200, _merged(chunks))

    def _record(self, body: Any, *, main: bool, model: str = "") -> None:
        path, _, query = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.record(Request(self.command, path, query, headers, body, main, model))

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, chunks: list[dict[str, Any]]) -> None:
        data = b"".join(f"data: {json.dumps(c)}\r\n\r\n".encode() for c in chunks)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def serve(turns: Sequence[Turn]) -> Iterator[ScriptedServer]:
    """The server on a free port for the `with` block; `turns` is the model's script."""
    server = ScriptedServer(turns)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# -- recordings of the real CLI for the parser tests -----------------------------------------

RECORDINGS = Path(__file__).resolve().parents[2] / "unit" / "executors" / "recordings" / "gemini"
RECORDING_MODEL = "gemini-2.5-flash"


@dataclass(frozen=True)
class Scenario:
    """One recorded run: the model's script and what the agent config asks of the CLI."""

    turns: tuple[Turn, ...]
    agent: dict[str, Any] = field(default_factory=dict)
    executor: dict[str, Any] = field(default_factory=dict)


SCENARIOS: dict[str, Scenario] = {
    # Writes a file, runs an enabled shell command, is refused a restricted one, answers.
    "success_shell": Scenario(
        turns=(
            reply(
                "I will write the file.",
                FunctionCall("write_file", {"file_path": "hello.txt", "content": "hello\n"}),
            ),
            call("run_shell_command", command="cat hello.txt", description="Show the file"),
            call("run_shell_command", command="rm hello.txt"),
            text(
                "Wrote hello.txt; it says hello.",
                usage=Usage(prompt=1200, output=30, cached=200, thoughts=7),
            ),
        ),
        agent={
            "toolsEnabled": ["run_shell_command(cat)"],
            "toolRestrictions": ["run_shell_command(rm)"],
        },
    ),
    # maxTurns 1: the second model request is over the limit (exit 53).
    "turn_limit": Scenario(
        turns=(call("list_directory", dir_path="."), text("never reached")),
        executor={"maxTurns": 1},
    ),
    # A key the API refuses: not retried, exit 145 (401 mod 256).
    "auth_failure": Scenario(turns=(http_error(401),)),
    # An overloaded API with no retries allowed: exit 247 (503 mod 256).
    "server_error": Scenario(
        turns=(http_error(503, "The model is overloaded. Please try again later."),),
        executor={"maxRetries": 0},
    ),
}


def _recording_spec(scenario: Scenario, root: Path, env: dict[str, str], cli: Path) -> RunSpec:
    from agentfleet.runner.spec import RunSpec

    worktree = root / "work"
    worktree.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=worktree, check=True)
    executor = {
        "type": "gemini",
        "command": [str(cli)],
        "model": RECORDING_MODEL,
        "env": env,
        **scenario.executor,
    }
    return RunSpec.model_validate(
        {
            "name": "rec-dev-1",
            "stage": "dev",
            "attempt": 1,
            "agentName": "recorder",
            "agent": {
                "agentType": "Development",
                "baseExecutor": executor,
                "specializedInstructions": "Write small changes.",
                **scenario.agent,
            },
            "worktree": str(worktree),
            "contextDir": str(root / "context"),
        }
    )


def record_one(name: str, scenario: Scenario, cli: Path) -> int:
    """Run the real CLI as `GeminiExecutor.command` starts it; keep its stdout verbatim."""
    from agentfleet.executors.gemini import GeminiExecutor
    from agentfleet.runner.context import write_context

    with tempfile.TemporaryDirectory(prefix="gemini-rec-") as tmp, serve(scenario.turns) as server:
        env = {**server.env(), "TMPDIR": tmp}  # the CLI's error reports stay in here
        spec = _recording_spec(scenario, Path(tmp), env, cli)
        prompt = "Write hello.txt containing hello, then show it."
        invocation = GeminiExecutor().command(spec, prompt)
        write_context(spec, prompt, invocation.files)
        done = subprocess.run(
            invocation.argv,
            cwd=spec.worktree,
            env=invocation.environment(os.environ),
            input=invocation.stdin_text,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    RECORDINGS.mkdir(parents=True, exist_ok=True)
    (RECORDINGS / f"{name}.jsonl").write_text(done.stdout, encoding="utf-8")
    return done.returncode


def record(names: Sequence[str]) -> None:
    record_scenarios("gemini", names, SCENARIOS, record_one, RECORDINGS)


if __name__ == "__main__":
    main(__spec__.name if __spec__ else "gemini", SCENARIOS, record)
