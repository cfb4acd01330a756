"""TicketBatch: raw tickets in, a run of refined tasks out."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal, Self

from pydantic import AfterValidator, Field, PositiveInt, field_validator, model_validator

from ..core.dag import find_cycle
from ..core.naming import task_name
from .meta import (
    AgentType,
    CamelModel,
    Complexity,
    ObjectRef,
    PrinterColumn,
    Priority,
    Resource,
    Status,
    phase_columns,
)
from .run import Attempt, Usage

TICKET_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
TICKET_ID = re.compile(TICKET_ID_PATTERN)


def _check_ticket_id(value: str) -> str:
    if not TICKET_ID.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid ticket id: use 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


TicketId = Annotated[
    str,
    AfterValidator(_check_ticket_id),
    Field(json_schema_extra={"pattern": TICKET_ID_PATTERN, "maxLength": 63}),
]


class Ticket(CamelModel):
    id: TicketId
    raw_description: str = Field(min_length=1)
    priority: Priority = Priority.MEDIUM
    estimated_complexity: Complexity | None = None
    dependencies: list[TicketId] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)


class ExecutionStrategy(StrEnum):
    SEQUENTIAL = "Sequential"
    PARALLEL_BATCH = "ParallelBatch"
    DEPENDENCY_AWARE = "DependencyAware"


class Refinement(CamelModel):
    """How raw tickets become tasks. Every refinement run is shown every ticket of the batch
    (to see cross-ticket dependencies and duplicates) and asked to refine its group of them."""

    enabled: bool = False
    agent_ref: ObjectRef | None = None
    agent_type: AgentType | None = None
    strategy: ExecutionStrategy | None = Field(
        default=None,
        description="Sequential: groups one after another, each seeing the groups refined "
        "before; ParallelBatch: groups of batchSize at once; DependencyAware: a ticket is "
        "refined after the tickets it depends on. Unset: the batch's strategy.",
    )
    batch_size: PositiveInt | None = Field(
        default=None,
        description="Tickets per refinement run. Unset: every ticket (Sequential) or "
        "dependency level (DependencyAware) in one run; for ParallelBatch the batch's "
        "batchSize, else 10.",
    )

    @model_validator(mode="after")
    def _one_agent_source(self) -> Self:
        if self.agent_ref is not None and self.agent_type is not None:
            raise ValueError("refinement takes `agentRef` or `agentType`, not both")
        return self


QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?([KMGTPE]i|[kMGTPE])?$"


class WorkspaceAccessMode(StrEnum):
    READ_WRITE_ONCE = "ReadWriteOnce"
    READ_WRITE_ONCE_POD = "ReadWriteOncePod"
    READ_WRITE_MANY = "ReadWriteMany"


class Workspace(CamelModel):
    """The batch's workspace volume in a cluster; unset fields take the operator's defaults.

    Every task's worktree lives on it. ReadWriteOnce keeps a batch's Pods on one node;
    ReadWriteMany lets them spread. Ignored by `agentfleet run`, which uses the local disk.
    """

    storage_class_name: str | None = Field(
        default=None, description="Storage class of the claim; unset: the cluster's default."
    )
    size: str | None = Field(
        default=None, pattern=QUANTITY_PATTERN, description="Requested size, such as 10Gi."
    )
    access_mode: WorkspaceAccessMode | None = None
    retain: bool | None = Field(
        default=None, description="Keep the claim when the batch is deleted."
    )


class TicketBatchSpec(CamelModel):
    project_ref: ObjectRef
    tickets: list[Ticket] = Field(min_length=1)
    refinement: Refinement = Field(default_factory=Refinement)
    strategy: ExecutionStrategy = ExecutionStrategy.DEPENDENCY_AWARE
    batch_size: PositiveInt | None = Field(
        default=None, description="Tasks per wave with ParallelBatch; unset: parallelLimit."
    )
    parallel_limit: PositiveInt = 3
    workflow_ref: ObjectRef | None = None
    agent_assignments: dict[AgentType, str] = Field(default_factory=dict)
    execute: bool = Field(default=True, description="Run the tasks once refined.")
    workspace: Workspace = Field(default_factory=Workspace)

    @field_validator("tickets")
    @classmethod
    def _tickets_form_a_dag(cls, tickets: list[Ticket]) -> list[Ticket]:
        ids: dict[str, int] = {}
        for index, ticket in enumerate(tickets):
            if ticket.id in ids:
                raise ValueError(
                    f"tickets[{index}].id: duplicate ticket id {ticket.id!r} "
                    f"(first at tickets[{ids[ticket.id]}])"
                )
            ids[ticket.id] = index
        for index, ticket in enumerate(tickets):
            for dep in ticket.dependencies:
                if dep == ticket.id:
                    raise ValueError(
                        f"tickets[{index}].dependencies: ticket {ticket.id!r} depends on itself"
                    )
                if dep not in ids:
                    raise ValueError(
                        f"tickets[{index}].dependencies: ticket {ticket.id!r} depends on "
                        f"unknown ticket {dep!r}"
                    )
        cycle = find_cycle({t.id: t.dependencies for t in tickets})
        if cycle:
            raise ValueError("tickets form a dependency cycle: " + " -> ".join(cycle))
        return tickets

    def check_task_names(self, batch: str) -> None:
        """Two ticket ids must not collapse into one task name (`T_1` and `t-1`)."""
        seen: dict[str, str] = {}
        for ticket in self.tickets:
            name = task_name(batch, ticket.id)
            if name in seen:
                raise ValueError(
                    f"tickets {seen[name]!r} and {ticket.id!r} both become task {name!r}; "
                    "rename one of them"
                )
            seen[name] = ticket.id


class BatchPhase(StrEnum):
    PENDING = "Pending"
    REFINING = "Refining"
    REFINED = "Refined"
    PROCESSING = "Processing"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def terminal(self) -> bool:
        return self in (BatchPhase.SUCCEEDED, BatchPhase.FAILED)


class TaskCounts(CamelModel):
    total: int = 0
    pending: int = 0
    running: int = 0
    awaiting_approval: int = 0
    escalated: int = 0
    succeeded: int = 0
    failed: int = 0
    dependency_failed: int = 0
    skipped: int = 0
    aborted: int = 0


class TicketEntry(CamelModel):
    id: str
    task: str | None = None
    phase: str = "Pending"
    reason: str | None = Field(
        default=None, description="InvalidRefinement when its refinement was unusable twice."
    )
    message: str | None = None


class RefinementAttempt(Attempt):
    """One refinement run: which tickets it was asked to refine, and which answers failed."""

    tickets: list[str] = Field(default_factory=list)
    wave: int = 0
    invalid: dict[str, str] = Field(
        default_factory=dict, description="Ticket id -> why its answer could not be used."
    )


class TicketBatchStatus(Status):
    counts: TaskCounts = Field(default_factory=TaskCounts)
    progress: str | None = None
    tickets: list[TicketEntry] = Field(default_factory=list)
    refinement_attempts: list[RefinementAttempt] = Field(default_factory=list)
    current_wave: int | None = None
    tokens: int = Field(default=0, description="usage.tokens: every attempt of the batch.")
    cost_usd: float = Field(default=0.0, description="usage.costUsd: every attempt of the batch.")
    usage: Usage = Field(default_factory=Usage)
    start_time: datetime | None = None
    completion_time: datetime | None = None


class TicketBatch(Resource[TicketBatchSpec, TicketBatchStatus]):
    KIND: ClassVar[str] = "TicketBatch"
    PLURAL: ClassVar[str] = "ticketbatches"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("tb",)
    PRINTER_COLUMNS = (
        PrinterColumn(name="Strategy", type="string", json_path=".spec.strategy"),
        *phase_columns("Succeeded", ".status.progress", timed=True),
    )

    kind: Literal["TicketBatch"] = "TicketBatch"
    spec: TicketBatchSpec
    status: TicketBatchStatus | None = None

    @model_validator(mode="after")
    def _task_names_are_distinct(self) -> Self:
        self.spec.check_task_names(self.metadata.name)
        return self
