"""AgentConfig: one agent profile, from the CLI it drives to the limits it runs under."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal, Self

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from .meta import (
    AgentType,
    CamelModel,
    ObjectRef,
    PrinterColumn,
    Resource,
    Status,
    phase_columns,
)


class ExecutorType(StrEnum):
    CLAUDE_CODE = "claude-code"
    GEMINI = "gemini"
    CODEX = "codex"
    COMMAND = "command"


PERMISSION_MODES: dict[ExecutorType, tuple[str, ...]] = {
    ExecutorType.CLAUDE_CODE: (
        "acceptEdits",
        "auto",
        "bypassPermissions",
        "default",
        "dontAsk",
        "manual",
        "plan",
    ),
    ExecutorType.GEMINI: ("default", "auto_edit", "yolo", "plan"),
    ExecutorType.CODEX: ("read-only", "workspace-write", "danger-full-access"),
    ExecutorType.COMMAND: (),
}
"""What `permissionMode` may say per CLI: Claude Code's permission modes, Gemini's approval
modes, Codex's sandbox modes. Each CLI has its own vocabulary; agentfleet passes it through."""


class Pricing(CamelModel):
    """USD per million tokens, for CLIs that report tokens but no cost (Gemini, Codex)."""

    input: NonNegativeFloat = Field(allow_inf_nan=False)
    output: NonNegativeFloat = Field(allow_inf_nan=False)
    cache_read: NonNegativeFloat | None = Field(default=None, allow_inf_nan=False)
    cache_creation: NonNegativeFloat | None = Field(default=None, allow_inf_nan=False)


class BaseExecutor(CamelModel):
    type: ExecutorType
    image: str | None = Field(
        default=None, description="Container image of the run (cluster only)."
    )
    command: list[str] | None = Field(
        default=None,
        description="argv of the program, never run by a shell: required for the command "
        "executor; for an agent CLI, how to start it (default: its name on PATH).",
    )
    args: list[str] = Field(
        default_factory=list, description="Extra arguments, appended after agentfleet's own."
    )
    model: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    permission_mode: str | None = Field(
        default=None,
        description="Claude Code --permission-mode, Gemini --approval-mode or Codex --sandbox; "
        "unset: acceptEdits, auto_edit, and for Codex workspace-write (read-only for a "
        "refinement, danger-full-access in a Pod, which is the sandbox).",
    )
    max_turns: PositiveInt | None = Field(
        default=None, description="Model turns a run may take before it stops as failed."
    )
    max_retries: NonNegativeInt = Field(
        default=2, description="Retries of a failed model API request inside one run."
    )
    pricing: Pricing | None = Field(
        default=None,
        description="Prices to compute costUsd where the CLI reports none; Claude Code's own "
        "reported cost always wins.",
    )

    @model_validator(mode="after")
    def _command_executor_needs_a_command(self) -> Self:
        if self.type is ExecutorType.COMMAND and not self.command:
            raise ValueError("the command executor needs `command`, the program's argv")
        modes = PERMISSION_MODES[self.type]
        if self.permission_mode is not None and self.permission_mode not in modes:
            allowed = ", ".join(modes) if modes else "none (the command executor has no modes)"
            raise ValueError(
                f"permissionMode {self.permission_mode!r} is not one of {self.type.value}'s "
                f"modes: {allowed}"
            )
        return self


class NetworkIsolation(CamelModel):
    enabled: bool = False
    allowed_egress: list[str] = Field(
        default_factory=list, description="Hosts or CIDRs a run may reach besides DNS."
    )


class ResourceLimits(CamelModel):
    memory_mb: PositiveInt | None = None
    cpu_cores: PositiveFloat | None = Field(default=None, allow_inf_nan=False)
    disk_mb: PositiveInt | None = None


class EnvironmentRequirements(CamelModel):
    isolated_worktree: bool = True
    test_database: bool = False
    mock_external_services: bool = False
    network_isolation: NetworkIsolation = Field(default_factory=NetworkIsolation)
    resource_limits: ResourceLimits = Field(default_factory=ResourceLimits)


class SubAgent(CamelModel):
    agent_type: AgentType
    description: str = Field(
        default="", description="When the main agent should hand work to this sub-agent."
    )
    specialized_prompt: str = ""
    tools: list[str] = Field(
        default_factory=list, description="Tools it may use; empty: those of its parent."
    )
    tool_restrictions: list[str] = Field(default_factory=list)
    model: str | None = None
    max_session_duration_seconds: PositiveInt | None = None
    context_sharing: bool = Field(
        default=False, description="Whether the sub-agent sees its parent's conversation."
    )


class AgentConfigSpec(CamelModel):
    agent_type: AgentType
    base_executor: BaseExecutor
    specialized_instructions: str = ""
    max_parallel_tasks: PositiveInt | None = Field(
        default=None,
        description="Runs this agent may have in flight at once, across batches; unset: no cap.",
    )
    environment_requirements: EnvironmentRequirements = Field(
        default_factory=EnvironmentRequirements
    )
    tools_enabled: list[str] = Field(
        default_factory=list,
        description="The tools the agent has, each allowed without asking (rules such as "
        '"Bash(git diff*)" allow a command prefix); empty: the CLI\'s default set.',
    )
    tool_restrictions: list[str] = Field(
        default_factory=list, description="Tools or rules the agent must not use."
    )
    sub_agents: dict[str, SubAgent] = Field(default_factory=dict)
    credentials_secret_ref: ObjectRef | None = None
    timeout_seconds: PositiveInt | None = Field(
        default=None, description="Default time limit of a run when its stage sets none."
    )


class AgentConfigStatus(Status):
    active_runs: int = 0


class AgentConfig(Resource[AgentConfigSpec, AgentConfigStatus]):
    KIND: ClassVar[str] = "AgentConfig"
    PLURAL: ClassVar[str] = "agentconfigs"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("agent",)
    PRINTER_COLUMNS = (
        PrinterColumn(name="Type", type="string", json_path=".spec.agentType"),
        PrinterColumn(name="Executor", type="string", json_path=".spec.baseExecutor.type"),
        PrinterColumn(name="Active", type="integer", json_path=".status.activeRuns"),
        *phase_columns("Ready"),
    )

    kind: Literal["AgentConfig"] = "AgentConfig"
    spec: AgentConfigSpec
    status: AgentConfigStatus | None = None
