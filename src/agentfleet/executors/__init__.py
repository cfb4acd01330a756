"""Agent CLIs behind one interface; `executor_for` picks the one an AgentConfig names."""

from __future__ import annotations

from ..models.agent import AgentConfigSpec, ExecutorType
from .base import AgentEvent, Executor, ExecutorOutcome, ExecutorUnavailableError, Invocation
from .command import CommandExecutor


def executor_for(executor_type: ExecutorType) -> Executor:
    """A fresh executor for one run (executors keep per-run state while parsing).

    The CLI executors import on demand: a run loads only the parser it needs.
    """
    if executor_type is ExecutorType.CLAUDE_CODE:
        from .claude_code import ClaudeCodeExecutor

        return ClaudeCodeExecutor()
    if executor_type is ExecutorType.GEMINI:
        from .gemini import GeminiExecutor

        return GeminiExecutor()
    if executor_type is ExecutorType.CODEX:
        from .codex import CodexExecutor

        return CodexExecutor()
    if executor_type is ExecutorType.COMMAND:
        return CommandExecutor()
    raise ExecutorUnavailableError(f"no executor for {executor_type!r}")


def ignored_settings(spec: AgentConfigSpec) -> list[str]:
    """Settings of this agent its CLI has no way to honour: said, not silently dropped."""
    executor = spec.base_executor.type
    ignored = []
    if executor in (ExecutorType.GEMINI, ExecutorType.CODEX) and spec.sub_agents:
        ignored.append(f"subAgents (the {executor.value} CLI takes no sub-agent definitions)")
    if executor is ExecutorType.CODEX and spec.base_executor.max_turns is not None:
        ignored.append("maxTurns (Codex has no turn limit; the run's deadline bounds it)")
    if executor is ExecutorType.COMMAND and spec.base_executor.max_turns is not None:
        ignored.append("maxTurns (a plain command has no turns)")
    return ignored


__all__ = [
    "AgentEvent",
    "CommandExecutor",
    "Executor",
    "ExecutorOutcome",
    "ExecutorUnavailableError",
    "Invocation",
    "executor_for",
    "ignored_settings",
]
