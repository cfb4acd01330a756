"""Agent CLIs behind one interface; `executor_for` picks the one an AgentConfig names."""

from __future__ import annotations

from ..models.agent import ExecutorType
from .base import AgentEvent, Executor, ExecutorOutcome, ExecutorUnavailableError, Invocation
from .command import CommandExecutor

_LATER = {
    ExecutorType.CLAUDE_CODE: "claude-code",
    ExecutorType.GEMINI: "gemini",
    ExecutorType.CODEX: "codex",
}


def executor_for(executor_type: ExecutorType) -> Executor:
    """A fresh executor for one run (executors keep per-run state while parsing)."""
    if executor_type is ExecutorType.COMMAND:
        return CommandExecutor()
    name = _LATER.get(executor_type, str(executor_type))
    raise ExecutorUnavailableError(
        f"the {name} executor arrives with the agents work; this build runs only the "
        "`command` executor"
    )


__all__ = [
    "AgentEvent",
    "CommandExecutor",
    "Executor",
    "ExecutorOutcome",
    "ExecutorUnavailableError",
    "Invocation",
    "executor_for",
]
