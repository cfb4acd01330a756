"""The one interface every agent CLI implements, so the runner never knows which CLI it drives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..models.log import LogEventType
from ..models.run import TokenUsage

if TYPE_CHECKING:
    from ..models.agent import Pricing
    from ..runner.spec import RunSpec


@dataclass(frozen=True)
class Invocation:
    """How to start the agent: argv (never a shell string), the variables it adds, its stdin.

    The agent inherits the runner's environment with `env` on top, so credentials such as
    ANTHROPIC_API_KEY pass through without agentfleet ever holding them. `files` are written to
    the run's context dir before the start (names relative to it, mode 0600), for CLIs that
    take configuration as files (an MCP config with a token, settings).
    """

    argv: list[str]
    env: dict[str, str]
    stdin_text: str = ""
    files: dict[str, str] = field(default_factory=dict)

    def environment(self, inherited: Mapping[str, str]) -> dict[str, str]:
        return {**inherited, **self.env}


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

    `text` is the agent's final answer (what a refinement run parses); `structured` the JSON
    a CLI returned for a `--json-schema` request, when it has that feature. `ok` is False when
    the stream itself reported a failure even though the process exited 0, or when it ended
    with no final result. `tokens` and `cost_usd` are None when the agent reported no usage
    (unknown, not zero).
    """

    tokens: TokenUsage | None
    cost_usd: float | None
    text: str
    ok: bool
    message: str = ""
    structured: Any = None
    session_id: str | None = None
    answer_invalid: bool = False
    """The agent ran but could not give the answer asked for (a refinement's structured
    output): the run is judged on its answer, as InvalidRefinement, not as a crash."""


class Executor(Protocol):
    """One instance per run: `parse_line` may keep state (usage sums, the final text)."""

    def command(self, spec: RunSpec, prompt: str) -> Invocation:
        """The agent's command line for this run; the prompt is also in the context dir."""
        ...

    def parse_line(self, line: str) -> list[AgentEvent]:
        """Events for one line of the agent's stdout (without its newline)."""
        ...

    def finish(self, exit_code: int) -> ExecutorOutcome:
        """Called once, after the process exited and its stdout was read to the end.

        An executor may also define `parse_stderr_line(line) -> list[AgentEvent]` for a CLI
        that reports something only on stderr (Gemini's API retries); the runner calls it
        for every stderr line, after logging the line itself.
        """
        ...


class ExecutorUnavailableError(LookupError):
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


class InvalidAgentConfigError(ValueError):
    """The AgentConfig asks for something its CLI would refuse; the run fails as InvalidSpec."""


def cli_argv(spec: RunSpec, default_binary: str) -> list[str]:
    """How to start the CLI: `baseExecutor.command` when set, else its name on PATH."""
    command = spec.agent.base_executor.command
    return list(command) if command else [default_binary]


def priced_cost(tokens: TokenUsage | None, pricing: Pricing | None) -> float | None:
    """The cost of `tokens` at `pricing` (USD per million), or None when either is unknown."""
    if tokens is None or pricing is None:
        return None
    cache_read = pricing.cache_read if pricing.cache_read is not None else pricing.input
    cache_creation = pricing.cache_creation if pricing.cache_creation is not None else pricing.input
    total = (
        tokens.input * pricing.input
        + tokens.output * pricing.output
        + tokens.cache_read * cache_read
        + tokens.cache_creation * cache_creation
    )
    return round(total / 1_000_000, 8)
