"""The run spec: everything the runner needs, written by a driver as one JSON file.

Both drivers build it with `build_run_spec`, so a run behaves the same in a Pod and locally.
"""

from __future__ import annotations

from pydantic import Field, PositiveInt

from ..core.actions import RunRequest
from ..models.agent import AgentConfig, AgentConfigSpec
from ..models.batch import Ticket, TicketBatch
from ..models.meta import CamelModel
from ..models.run import RefinedTicket, RunKind
from ..models.task import AgentTask, AgentTaskSpec
from ..models.workflow import Stage, Workflow


class CommitAuthor(CamelModel):
    name: str = "agentfleet"
    email: str = "agentfleet@localhost"


class McpServer(CamelModel):
    """The agentfleet MCP server a run's agent may call: a local command or an HTTP URL.

    The token, when there is one, reaches the agent only through a file in the context dir.
    """

    name: str = "agentfleet"
    command: list[str] | None = None
    url: str | None = None
    token: str | None = None


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
        default_factory=list, description="Every raw ticket of the batch, for a refinement."
    )
    refine_ids: list[str] = Field(
        default_factory=list, description="The tickets this refinement run must refine."
    )
    refined: list[RefinedTicket] = Field(
        default_factory=list, description="Tickets earlier refinement runs already refined."
    )
    feedback: list[str] = Field(
        default_factory=list, description="Why the previous answer for these tickets failed."
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
    agent_generation: int | None = Field(
        default=None, description="The AgentConfig's generation this run was built from."
    )
    mcp: McpServer | None = None
    sandboxed: bool = Field(
        default=False,
        description="The run is inside a container made for it (a Pod): CLIs may skip their "
        "own permission prompts there even as root.",
    )


def build_run_spec(
    request: RunRequest,
    *,
    agent: AgentConfig,
    task: AgentTask | None,
    batch: TicketBatch | None,
    workflow: Workflow | None,
    worktree: str,
    context_dir: str,
    timeout_slack_seconds: int = 0,
    memory_limit_bytes: int | None = None,
    sandboxed: bool = False,
    mcp: McpServer | None = None,
) -> RunSpec:
    """The spec of `request`, the same for a Pod and a local process but for its paths.

    Raises ValueError when the request no longer fits the world (its task is gone, or no
    workflow has its stage): the driver then fails the run with that message.
    """
    stage_spec = None
    branch = None
    if request.kind == RunKind.STAGE:
        if task is None:
            raise ValueError(f"task {request.task!r} is gone")
        branch = (task.status.branch if task.status else None) or task.spec.branch
        if branch is None:
            raise ValueError(f"task {task.name!r} has no branch")
        try:
            stage_spec = workflow.spec.stage(request.stage) if workflow else None
        except KeyError:
            stage_spec = None
        if stage_spec is None:
            raise ValueError(f"task {task.name!r}: no workflow with a stage {request.stage!r}")
    return RunSpec(
        name=request.name,
        kind=request.kind,
        batch=request.batch,
        task=request.task,
        stage=request.stage,
        attempt=request.attempt,
        agent_name=request.agent,
        agent=agent.spec,
        task_spec=task.spec if task is not None else None,
        stage_spec=stage_spec,
        tickets=list(batch.spec.tickets) if batch and request.kind == RunKind.REFINEMENT else [],
        refine_ids=list(request.tickets),
        refined=list(request.refined),
        feedback=list(request.feedback),
        worktree=worktree,
        context_dir=context_dir,
        branch=branch,
        timeout_seconds=(
            request.timeout_seconds + timeout_slack_seconds if request.timeout_seconds else None
        ),
        memory_limit_bytes=memory_limit_bytes,
        agent_generation=agent.metadata.generation,
        mcp=mcp,
        sandboxed=sandboxed,
    )
