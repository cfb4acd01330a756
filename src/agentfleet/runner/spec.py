"""The run spec: everything the runner needs, written by a driver as one JSON file.

Both drivers build it with `build_run_spec`, so a run behaves the same in a Pod and locally.
"""

from __future__ import annotations

from pydantic import Field, PositiveInt

from ..models.agent import AgentConfigSpec
from ..models.batch import Ticket
from ..models.meta import CamelModel
from ..models.run import RunKind
from ..models.task import AgentTaskSpec
from ..models.workflow import Stage


class CommitAuthor(CamelModel):
    name: str = "agentfleet"
    email: str = "agentfleet@localhost"


class RunSpec(CamelModel):
    name: str = Field(min_length=1)
    kind: RunKind = RunKind.STAGE
    batch: str | None = None
    task: str | None = None
    stage: str
    attempt: int
    agent_name: str
    agent: AgentConfigSpec
    task_spec: AgentTaskSpec | None = Field(
        default=None, description="The task a stage run works on; None for a refinement."
    )
    stage_spec: Stage | None = None
    tickets: list[Ticket] = Field(
        default_factory=list, description="The raw tickets a refinement run refines."
    )
    worktree: str = Field(description="Absolute path: the run's working directory.")
    context_dir: str = Field(
        description="Absolute path outside the worktree where the task context is written."
    )
    branch: str | None = None
    author: CommitAuthor = Field(default_factory=CommitAuthor)
    timeout_seconds: PositiveInt | None = None
    memory_limit_bytes: PositiveInt | None = Field(
        default=None,
        description="RLIMIT_AS the runner sets on the agent's process; None where a cgroup or "
        "a Pod limit already bounds the run.",
    )
