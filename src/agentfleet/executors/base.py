"""The one interface every agent CLI implements, so the runner never knows which CLI it drives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..models.log import LogEventType
from ..models.run import TokenUsage

if TYPE_CHECKING:
    from ..runner.spec import RunSpec


@dataclass(frozen=True)
class Invocation:
    """How to start the agent: argv (never a shell string), its whole environment, its stdin.

    `files` are written to the run's context dir before the start (names relative to it), for
    CLIs that take configuration as files (an MCP config, sub-agent definitions).
    """

    argv: list[str]
    env: dict[str, str]
    stdin_text: str = ""
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentEvent:
    """One normalised event without the run name and time: the runner stamps those."""

    type: LogEventType
    text: str = ""
    tool: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    tokens: TokenUsage | None = None
    cost_usd: float | None = None


@dataclass(frozen=True)
class ExecutorOutcome:
    """What the executor made of the whole stream once the agent exited.

    `text` is the agent's final answer (what a refinement run parses); `ok` is False when the
    stream itself reported a failure even though the process exited 0. `tokens` and `cost_usd`
    are None when the agent reported no usage (unknown, not zero).
    """

    tokens: TokenUsage | None
    cost_usd: float | None
    text: str
    ok: bool
    message: str = ""


class Executor(Protocol):
    """One instance per run: `parse_line` may keep state (usage sums, the final text)."""

    def command(self, spec: RunSpec, prompt: str) -> Invocation:
        """The agent's command line for this run; the prompt is also in the context dir."""
        ...

    def parse_line(self, line: str) -> list[AgentEvent]:
        """Events for one line of the agent's stdout (without its newline)."""
        ...

    def finish(self, exit_code: int) -> ExecutorOutcome:
        """Called once, after the process exited and its stdout was read to the end."""
        ...


class ExecutorUnavailableError(NotImplementedError):
    """This build cannot drive the requested agent CLI; the run fails as ExecutorUnavailable."""


def run_environment(spec: RunSpec) -> dict[str, str]:
    """The variables every executor adds, so an agent or its tools can find the run's context."""
    return {
        "AGENTFLEET_CONTEXT_DIR": spec.context_dir,
        "AGENTFLEET_RUN": spec.name,
        "AGENTFLEET_TASK": spec.task or "",
        "AGENTFLEET_STAGE": spec.stage,
        "AGENTFLEET_ATTEMPT": str(spec.attempt),
        "AGENTFLEET_AGENT": spec.agent_name,
    }
