"""The `command` executor: any program as an agent, for scripted agents, tests and benchmarks.

The program gets the prompt on stdin and the `AGENTFLEET_*` variables. Each stdout line is a
`text` event, except a JSON object line with `"type": "usage"`, e.g.

    {"type": "usage", "tokens": {"input": 1200, "output": 340}, "costUsd": 0.01}

which is summed into the run's usage instead, so a script can report what a model it calls
cost. The final text (what a refinement run parses) is every other stdout line.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..models.log import LogEventType
from ..models.run import TokenUsage
from .base import AgentEvent, ExecutorOutcome, Invocation, run_environment

if TYPE_CHECKING:
    from ..runner.spec import RunSpec

TOKEN_FIELDS = ("input", "output", "cacheRead", "cacheCreation")


class CommandExecutor:
    """Runs `baseExecutor.command + args` without a shell."""

    def __init__(self) -> None:
        self._tokens: dict[str, int] | None = None
        self._cost: float | None = None
        self._lines: list[str] = []

    def command(self, spec: RunSpec, prompt: str) -> Invocation:
        base = spec.agent.base_executor
        if not base.command:
            raise ValueError("the command executor needs `baseExecutor.command`")
        env = {**base.env, **run_environment(spec)}
        return Invocation(argv=[*base.command, *base.args], env=env, stdin_text=prompt)

    def parse_line(self, line: str) -> list[AgentEvent]:
        usage = _usage(line)
        if usage is None:
            self._lines.append(line)
            return [AgentEvent(type=LogEventType.TEXT, text=line)]
        tokens, cost = usage
        if self._tokens is None:
            self._tokens = dict.fromkeys(TOKEN_FIELDS, 0)
        for key in TOKEN_FIELDS:
            self._tokens[key] += tokens.get(key, 0)
        if cost is not None:
            self._cost = (self._cost or 0.0) + cost
        return []

    def finish(self, exit_code: int) -> ExecutorOutcome:
        return ExecutorOutcome(
            tokens=TokenUsage.model_validate(self._tokens) if self._tokens is not None else None,
            cost_usd=self._cost,
            text="\n".join(self._lines),
            ok=exit_code == 0,
        )


def _usage(line: str) -> tuple[dict[str, int], float | None] | None:
    """The tokens and cost of a usage line, or None for any other line (malformed ones too)."""
    stripped = line.strip()
    if not (stripped.startswith("{") and '"usage"' in stripped):
        return None
    try:
        obj: Any = json.loads(stripped)
    except ValueError:
        return None
    if not isinstance(obj, dict) or obj.get("type") != "usage":
        return None
    raw_tokens = obj.get("tokens") or {}
    if not isinstance(raw_tokens, dict):
        return None
    tokens = {k: v for k, v in raw_tokens.items() if k in TOKEN_FIELDS and _count(v)}
    cost = obj.get("costUsd")
    if not (isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0):
        cost = None
    return tokens, float(cost) if cost is not None else None


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
