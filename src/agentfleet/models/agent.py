"""AgentConfig: one agent profile, from the CLI it drives to the limits it runs under."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal, Self

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

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


class BaseExecutor(CamelModel):
    type: ExecutorType
    image: str | None = Field(
        default=None, description="Container image of the run (cluster only)."
    )
    command: list[str] | None = Field(
        default=None,
        description="argv of the program; required for the command executor, never run by a shell.",
    )
    args: list[str] = Field(default_factory=list)
    model: str | None = None
    env: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _command_executor_needs_a_command(self) -> Self:
        if self.type is ExecutorType.COMMAND and not self.command:
            raise ValueError("the command executor needs `command`, the program's argv")
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
    specialized_prompt: str = ""
    tool_restrictions: list[str] = Field(default_factory=list)
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
    tools_enabled: list[str] = Field(default_factory=list)
    tool_restrictions: list[str] = Field(default_factory=list)
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
