"""The snapshot: everything `decide()` may look at, handed over as data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..models.agent import AgentConfig
from ..models.batch import TicketBatch
from ..models.project import Project
from ..models.run import ObservedRun
from ..models.task import AgentTask
from ..models.workflow import Workflow


@dataclass(frozen=True)
class Snapshot:
    """The world as one driver observed it at `now`. The core never looks anywhere else.

    Treat every object in it as immutable: a driver replaces an object that changed. The
    core remembers what it read of each task model by identity, which is what keeps a call
    on a 10,000-task batch under 100 ms.
    """

    now: datetime
    batches: Sequence[TicketBatch] = ()
    tasks: Sequence[AgentTask] = ()
    workflows: Mapping[str, Workflow] = field(default_factory=dict)
    agents: Mapping[str, AgentConfig] = field(default_factory=dict)
    projects: Mapping[str, Project] = field(default_factory=dict)
    runs: Sequence[ObservedRun] = ()
