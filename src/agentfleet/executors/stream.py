"""Reading a CLI's JSON-lines stream defensively: agent output is data, and any line may be
odd (not JSON, a JSON array, a field of the wrong type), so nothing here raises on it."""

from __future__ import annotations

import json
from typing import Any

from ..models.log import LogEventType
from .base import AgentEvent

TOOL_RESULT_LIMIT = 4000
"""Characters of a tool's output kept in a log event; the CLI's own transcript has it all."""


def json_object(line: str) -> dict[str, Any] | None:
    """The line as a JSON object, or None for anything else."""
    stripped = line.strip()
    if not stripped.startswith("{"):
        return None
    try:
        obj: Any = json.loads(stripped)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def plain_line(line: str) -> list[AgentEvent]:
    """A stdout line that is not an event of the CLI's stream: kept as text, not lost."""
    if not line.strip():
        return []
    return [AgentEvent(type=LogEventType.TEXT, text=line, data={"stream": "stdout"})]


def as_int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: object) -> str:
    return value if isinstance(value, str) else ""


def truncate(text: str, limit: int = TOOL_RESULT_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n... ({len(text) - limit} more characters)"
