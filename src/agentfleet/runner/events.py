"""The run's log: normalised events on stdout, one JSON line each, flushed as they happen.

Imports no pydantic until a model is needed, so `started_line` can be written in the first
milliseconds of a run, before the models load: a driver sees the runner alive at once.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ..executors.base import AgentEvent
    from ..models.log import LogEventType
    from ..models.run import TokenUsage


def utc_now_text() -> str:
    """The time as pydantic writes a UTC datetime, so hand-written and model lines agree."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def started_line(run: str, data: dict[str, Any]) -> str:
    """The first `runner` event, written without pydantic; same wire shape as a LogEvent."""
    event = {
        "time": utc_now_text(),
        "run": run,
        "type": "runner",
        "text": "started",
        "tool": None,
        "data": data,
        "tokens": None,
        "costUsd": None,
    }
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


class EventSink:
    """Writes events for one run; safe to call from the stdout and stderr reader threads."""

    def __init__(self, run: str, out: TextIO) -> None:
        self.run = run
        self._out = out
        self._lock = threading.Lock()

    def write_line(self, line: str) -> None:
        with self._lock:
            try:
                self._out.write(line + "\n")
                self._out.flush()
            except (BrokenPipeError, ValueError):
                pass  # nobody reads the log any more; the result file still tells the outcome

    def emit(
        self,
        type_: LogEventType,
        text: str = "",
        *,
        tool: str | None = None,
        data: dict[str, Any] | None = None,
        tokens: TokenUsage | None = None,
        cost_usd: float | None = None,
    ) -> None:
        from ..models.log import LogEvent

        event = LogEvent(
            time=datetime.now(UTC),
            run=self.run,
            type=type_,
            text=text,
            tool=tool,
            data=data or {},
            tokens=tokens,
            cost_usd=cost_usd,
        )
        self.write_line(event.model_dump_json(by_alias=True))

    def emit_agent_event(self, event: AgentEvent) -> None:
        self.emit(
            event.type,
            event.text,
            tool=event.tool,
            data=event.data,
            tokens=event.tokens,
            cost_usd=event.cost_usd,
        )
