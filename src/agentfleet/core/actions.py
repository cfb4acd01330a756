"""What `decide()` asks a driver to do. Each action is safe to apply twice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..models.meta import Status
from ..models.run import RefinedTicket, RunKind
from ..models.task import AgentTask


@dataclass(frozen=True)
class RunRequest:
    """Everything a driver needs to launch one run; the name makes creating it twice harmless."""

    name: str
    kind: RunKind
    batch: str | None
    task: str | None
    stage: str
    attempt: int
    agent: str
    project: str | None
    timeout_seconds: int | None
    tickets: tuple[str, ...] = ()
    """A refinement's group: the ticket ids it must refine (empty: every ticket)."""
    refined: tuple[RefinedTicket, ...] = ()
    feedback: tuple[str, ...] = ()


@dataclass(frozen=True)
class CreateTask:
    task: AgentTask


@dataclass(frozen=True)
class StartRun:
    run: RunRequest


@dataclass(frozen=True)
class CancelRun:
    name: str
    reason: str
    message: str = ""


@dataclass(frozen=True)
class SetStatus:
    kind: str
    name: str
    status: Status


@dataclass(frozen=True)
class RecordEvent:
    kind: str
    name: str
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class ClearAnnotation:
    """A one-shot human request (retry, skip, abort) has been acted on."""

    kind: str
    name: str
    key: str


Action = CreateTask | StartRun | CancelRun | SetStatus | RecordEvent | ClearAnnotation
