"""AgentTask: one refined ticket, and the record of every stage attempt it took."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field

from .meta import (
    AgentType,
    CamelModel,
    Complexity,
    ObjectName,
    ObjectRef,
    PrinterColumn,
    Priority,
    Resource,
    Status,
    phase_columns,
)
from .run import Attempt, Usage

APPROVE_ANNOTATION_PREFIX = "agentfleet.dev/approve-"
ACTION_ANNOTATION = "agentfleet.dev/action"


class HumanAction(StrEnum):
    RETRY = "retry"
    SKIP = "skip"
    ABORT = "abort"


class AgentTaskSpec(CamelModel):
    batch_ref: ObjectRef | None = None
    project_ref: ObjectRef | None = Field(
        default=None, description="Needed only for a task made by hand, outside a batch."
    )
    ticket_id: str | None = None
    title: str = Field(min_length=1)
    description: str = ""
    acceptance_criteria: list[str] = Field(default_factory=list)
    complexity: Complexity | None = None
    priority: Priority = Priority.MEDIUM
    dependencies: list[ObjectName] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    suggested_agent_type: AgentType | None = Field(
        default=None, description="The agent type its refinement suggested for the work."
    )
    likely_files: list[str] = Field(
        default_factory=list, description="Paths its refinement expects the work to touch."
    )
    branch: str | None = None
    workflow_ref: ObjectRef | None = None
    agent_assignments: dict[AgentType, str] = Field(default_factory=dict)
    order: int = Field(
        default=0, description="Position in its batch: the last scheduling tie-break."
    )


class TaskPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    AWAITING_APPROVAL = "AwaitingApproval"
    ESCALATED = "Escalated"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    DEPENDENCY_FAILED = "DependencyFailed"
    SKIPPED = "Skipped"
    ABORTED = "Aborted"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL_TASK

    @property
    def satisfies_dependents(self) -> bool:
        """A skipped task lets its dependents go: a human chose to move on without it."""
        return self in SATISFIES_DEPENDENTS


SATISFIES_DEPENDENTS = frozenset({TaskPhase.SUCCEEDED, TaskPhase.SKIPPED})
FAILS_DEPENDENTS = frozenset({TaskPhase.FAILED, TaskPhase.DEPENDENCY_FAILED, TaskPhase.ABORTED})
_TERMINAL_TASK = frozenset(
    {
        TaskPhase.SUCCEEDED,
        TaskPhase.FAILED,
        TaskPhase.DEPENDENCY_FAILED,
        TaskPhase.SKIPPED,
        TaskPhase.ABORTED,
    }
)


class StagePhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    AWAITING_APPROVAL = "AwaitingApproval"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"


class StageStatus(CamelModel):
    name: str
    phase: StagePhase = StagePhase.PENDING
    retry_from: int = Field(
        default=0,
        description="Attempts before this index were spent before a human's retry; they no "
        "longer count against maxRetries.",
    )
    approvals: list[str] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list)


class AgentTaskStatus(Status):
    stages: list[StageStatus] = Field(default_factory=list)
    progress: str | None = None
    branch: str | None = None
    commit: str | None = None
    wave: int | None = None
    tokens: int = 0
    cost_usd: float = 0.0
    usage: Usage = Field(default_factory=Usage)
    start_time: datetime | None = None
    completion_time: datetime | None = None

    def stage(self, name: str) -> StageStatus | None:
        return next((s for s in self.stages if s.name == name), None)


class AgentTask(Resource[AgentTaskSpec, AgentTaskStatus]):
    KIND: ClassVar[str] = "AgentTask"
    PLURAL: ClassVar[str] = "agenttasks"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("at",)
    PRINTER_COLUMNS = (
        PrinterColumn(name="Batch", type="string", json_path=".spec.batchRef.name"),
        *phase_columns("Succeeded", ".status.progress", timed=True),
    )

    kind: Literal["AgentTask"] = "AgentTask"
    spec: AgentTaskSpec
    status: AgentTaskStatus | None = None

    def approvals(self, stage: str) -> list[str]:
        """Who approved `stage`: the annotation holds a comma-separated list of approvers."""
        raw = self.metadata.annotations.get(APPROVE_ANNOTATION_PREFIX + stage, "")
        names = [part.strip() for part in raw.split(",")]
        return sorted({n for n in names if n})

    def requested_action(self) -> HumanAction | None:
        raw = self.metadata.annotations.get(ACTION_ANNOTATION, "").strip().lower()
        try:
            return HumanAction(raw) if raw else None
        except ValueError:
            return None
