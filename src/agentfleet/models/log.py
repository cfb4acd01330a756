"""Normalised log events: what every executor's stream becomes, one JSON line each."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field, NonNegativeFloat

from .meta import CamelModel
from .run import TokenUsage


class LogEventType(StrEnum):
    TEXT = "text"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    RETRY = "retry"
    ERROR = "error"
    RESULT = "result"
    CRITERION = "criterion"
    COMMIT = "commit"
    RUNNER = "runner"


class LogEvent(CamelModel):
    """One event of one run; the same shape whichever agent CLI produced it.

    `runner` events are the runner's own (started, agent exited, result written);
    `criterion` and `commit` report the checks and the commit after the agent.
    """

    time: datetime
    run: str
    type: LogEventType
    text: str = ""
    tool: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    tokens: TokenUsage | None = None
    cost_usd: NonNegativeFloat | None = None
