"""Runs: one attempt of one stage (or a refinement), as requested, observed and recorded."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Self

from pydantic import Field, NonNegativeFloat, NonNegativeInt, TypeAdapter, model_validator

from .meta import AgentType, CamelModel, Complexity, Priority


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
    """One task as a refinement agent specified it (the published refinement schema's item)."""

    id: str
    title: str = Field(min_length=1)
    description: str = ""
    acceptance_criteria: list[str] = Field(default_factory=list)
    complexity: Complexity | None = None
    priority: Priority | None = None
    dependencies: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    agent_type: AgentType | None = Field(
        default=None, description="The kind of agent the refinement suggests for the work."
    )
    likely_files: list[str] = Field(
        default_factory=list, description="Repository paths the work probably touches."
    )


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
    refinement_errors: dict[str, str] = Field(
        default_factory=dict,
        description="Ticket id -> why the agent's answer for it was unusable.",
    )
    agent_generation: int | None = Field(
        default=None, description="The AgentConfig generation the run was built from."
    )
    refined_tickets_packed: str | None = Field(
        default=None,
        description="refinedTickets as base64 of gzipped JSON, when plain they would not fit "
        "the 4 KiB of a Pod's termination message; unpacked on reading.",
    )

    @model_validator(mode="after")
    def _unpack_refined_tickets(self) -> Self:
        if self.refined_tickets_packed is not None and self.refined_tickets is None:
            try:
                raw = gzip.decompress(base64.b64decode(self.refined_tickets_packed, validate=True))
            except (OSError, EOFError, ValueError) as exc:
                raise ValueError(f"refinedTicketsPacked is not base64 of gzip: {exc}") from None
            self.refined_tickets = _REFINED_LIST.validate_json(raw)
            self.refined_tickets_packed = None
        return self

    def packed(self) -> RunResult:
        """The same result with its refined tickets compressed: what a Pod can report."""
        if not self.refined_tickets:
            return self
        raw = _REFINED_LIST.dump_json(self.refined_tickets, by_alias=True, exclude_none=True)
        packed = base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode()
        return self.model_copy(update={"refined_tickets": None, "refined_tickets_packed": packed})


_REFINED_LIST = TypeAdapter(list[RefinedTicket])


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
    agent_generation: int | None = Field(
        default=None, description="The AgentConfig generation the run was started with."
    )
    tokens: int | None = None
    token_usage: TokenUsage | None = None
    cost_usd: float | None = None


class Usage(CamelModel):
    """Tokens and cost summed over attempts (a task's, a batch's); unknown parts count zero."""

    tokens: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    cost_usd: float = 0.0
    attempts: int = Field(default=0, description="Attempts counted.")

    @classmethod
    def of(cls, attempt: Attempt) -> Usage:
        """One attempt's usage; an attempt that reported none counts as no attempt."""
        if attempt.tokens is None and attempt.cost_usd is None:
            return cls()
        tokens = attempt.token_usage or TokenUsage()
        return cls(
            tokens=attempt.tokens or 0,
            input_tokens=tokens.input,
            output_tokens=tokens.output,
            cache_read_tokens=tokens.cache_read,
            cache_creation_tokens=tokens.cache_creation,
            cost_usd=attempt.cost_usd or 0.0,
            attempts=1,
        )


def total_usage(parts: Iterable[Usage]) -> Usage:
    """The sum of many usages with plain integers: a 10,000-task batch sums them every round."""
    tokens = inputs = outputs = cache_read = cache_creation = attempts = 0
    cost = 0.0
    for part in parts:
        tokens += part.tokens
        inputs += part.input_tokens
        outputs += part.output_tokens
        cache_read += part.cache_read_tokens
        cache_creation += part.cache_creation_tokens
        cost += part.cost_usd
        attempts += part.attempts
    return Usage(
        tokens=tokens,
        input_tokens=inputs,
        output_tokens=outputs,
        cache_read_tokens=cache_read,
        cache_creation_tokens=cache_creation,
        cost_usd=round(cost, 8),
        attempts=attempts,
    )
