"""Statuses of the configuration kinds, so `get agentfleet` says more than their names.

A Project, an AgentConfig or a Workflow that parsed is valid; what remains to say is
whether what it names exists (a project's default workflow) and, for an agent, how many
runs it has in flight against its `maxParallelTasks`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..models.agent import AgentConfig, AgentConfigStatus
from ..models.meta import ConditionStatus, Resource, Status
from ..models.project import Project, ProjectStatus
from ..models.workflow import Workflow, WorkflowStatus
from .actions import Action, SetStatus
from .conditions import set_condition
from .world import World

READY = "Ready"


def _ready(
    resource: Resource[Any, Any],
    status: Status,
    ok: bool,
    reason: str,
    message: str,
    world: World,
) -> Status:
    generation = resource.metadata.generation
    status.phase = READY if ok else "Pending"
    status.observed_generation = generation
    status.conditions = set_condition(
        status.conditions,
        READY,
        ConditionStatus.TRUE if ok else ConditionStatus.FALSE,
        reason,
        message,
        world.snapshot.now,
        generation,
    )
    return status


def _changed(kind: str, resource: Resource[Any, Any], status: Status) -> Iterable[Action]:
    if status != resource.status:
        yield SetStatus(kind, resource.name, status)


def config_statuses(world: World) -> list[Action]:
    """SetStatus for each configuration object whose status is not what it should read."""
    snapshot = world.snapshot
    actions: list[Action] = []
    busy = Counter(agent for agent, _batch in world.in_flight.values())
    for name, agent in sorted(snapshot.agents.items()):
        agent_status = AgentConfigStatus(
            **{**(agent.status.model_dump() if agent.status else {}), "active_runs": busy[name]}
        )
        cap = agent.spec.max_parallel_tasks
        message = f"{busy[name]} run(s) in flight" + (f" of at most {cap}" if cap else "")
        _ready(agent, agent_status, True, "Valid", message, world)
        actions.extend(_changed(AgentConfig.KIND, agent, agent_status))
    for _name, workflow in sorted(snapshot.workflows.items()):
        flow_status = WorkflowStatus(**(workflow.status.model_dump() if workflow.status else {}))
        stages = ", ".join(s.name for s in workflow.spec.stages)
        _ready(workflow, flow_status, True, "Valid", f"stages: {stages}", world)
        actions.extend(_changed(Workflow.KIND, workflow, flow_status))
    for _name, project in sorted(snapshot.projects.items()):
        status = ProjectStatus(**(project.status.model_dump() if project.status else {}))
        ref = project.spec.default_workflow_ref
        if ref is not None and ref.name not in snapshot.workflows:
            _ready(project, status, False, "WorkflowNotFound", f"no workflow {ref.name!r}", world)
        else:
            _ready(project, status, True, "Valid", project.spec.repository.url, world)
        actions.extend(_changed(Project.KIND, project, status))
    return actions
