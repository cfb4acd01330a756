"""Runs: one attempt of one stage (or a refinement), as requested, observed and recorded."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field, NonNegativeFloat, NonNegativeInt

from .meta import CamelModel, Complexity, Priority


class RunKind(StrEnum):
    STAGE = "Stage"
    REFINEMENT = "Refinement"


class RunPhase(StrEnum):
    """What a driver observes of a run: a Pod's phase, or a local process's state."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def finished(self) -> bool:
        return self in (RunPhase.SUCCEEDED, RunPhase.FAILED)


class AttemptPhase(StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class CriterionOutcome(CamelModel):
    type: str
    passed: bool
    message: str = ""


class TokenUsage(CamelModel):
    input: NonNegativeInt = 0
    output: NonNegativeInt = 0
    cache_read: NonNegativeInt = 0
    cache_creation: NonNegativeInt = 0

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_creation


class DiffStat(CamelModel):
    files_changed: NonNegativeInt = 0
    insertions: NonNegativeInt = 0
    deletions: NonNegativeInt = 0


class RefinedTicket(CamelModel):
    """One task as a refinement agent specified it."""

    id: str
    title: str = Field(min_length=1)
    description: str = ""
    acceptance_criteria: list[str] = Field(default_factory=list)
    complexity: Complexity | None = None
    priority: Priority | None = None
    dependencies: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)


class RunResult(CamelModel):
    """What the runner writes when a run ends; drivers read it the same way."""

    outcome: AttemptPhase
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    criteria: list[CriterionOutcome] = Field(default_factory=list)
    commit: str | None = None
    diff_stat: DiffStat | None = None
    tokens: TokenUsage | None = None
    cost_usd: NonNegativeFloat | None = None
    duration_seconds: NonNegativeFloat | None = None
    refined_tickets: list[RefinedTicket] | None = None


class ObservedRun(CamelModel):
    """A run as a driver sees it: a Pod or a process, with its labels and, once done, result."""

    name: str
    kind: RunKind = RunKind.STAGE
    batch: str | None = None
    task: str | None = None
    stage: str
    attempt: int
    agent: str
    phase: RunPhase
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    result: RunResult | None = None
    start_time: datetime | None = None
    finish_time: datetime | None = None


class Attempt(CamelModel):
    """One attempt as recorded in a status: enough to explain what happened without the logs."""

    attempt: int
    agent: str
    run_name: str
    phase: AttemptPhase = AttemptPhase.RUNNING
    start_time: datetime | None = None
    finish_time: datetime | None = None
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    criteria: list[CriterionOutcome] = Field(default_factory=list)
    commit: str | None = None
    tokens: int | None = None
    cost_usd: float | None = None
