"""From tickets (raw or refined) to the AgentTasks a batch runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

from ..models.batch import TicketBatch
from ..models.meta import ObjectMeta, ObjectRef
from ..models.project import Project
from ..models.run import RefinedTicket
from ..models.task import AgentTask, AgentTaskSpec
from ..models.workflow import Workflow
from .naming import branch_name, run_name, task_name

TITLE_LENGTH = 80

cached_task_name = lru_cache(maxsize=65536)(task_name)


def title_of(raw: str) -> str:
    """A raw ticket's first non-empty line, shortened: what a person would call it."""
    line = next((ln.strip() for ln in raw.splitlines() if ln.strip()), raw.strip())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


def _task(
    batch: TicketBatch,
    order: int,
    ticket_id: str,
    spec: dict[str, object],
) -> AgentTask:
    name = cached_task_name(batch.name, ticket_id)
    return AgentTask(
        metadata=ObjectMeta(
            name=name,
            namespace=batch.metadata.namespace,
            labels={"agentfleet.dev/batch": batch.name},
        ),
        spec=AgentTaskSpec.model_validate(
            {
                "batchRef": ObjectRef(name=batch.name),
                "projectRef": batch.spec.project_ref,
                "ticketId": ticket_id,
                "branch": branch_name(batch.name, name),
                "workflowRef": batch.spec.workflow_ref,
                "agentAssignments": dict(batch.spec.agent_assignments),
                "order": order,
                **spec,
            }
        ),
    )


def tasks_from_tickets(batch: TicketBatch) -> list[AgentTask]:
    """Without refinement a ticket becomes a task as it is: its text is the description."""
    return [
        _task(
            batch,
            index,
            ticket.id,
            {
                "title": title_of(ticket.raw_description),
                "description": ticket.raw_description,
                "complexity": ticket.estimated_complexity,
                "priority": ticket.priority,
                "dependencies": [cached_task_name(batch.name, d) for d in ticket.dependencies],
                "tags": list(ticket.tags),
            },
        )
        for index, ticket in enumerate(batch.spec.tickets)
    ]


def tasks_from_refined(
    batch: TicketBatch,
    refined: Mapping[str, RefinedTicket],
    dependencies: Mapping[str, Sequence[str]],
) -> list[AgentTask]:
    """Every raw ticket becomes a task, in ticket order, specified by its refinement if any.

    A ticket with no usable refinement is planned from its raw text, so that the batch shows
    it and its dependents learn it failed. `dependencies` are the merged ones (explicit and
    inferred), by ticket id.
    """
    tasks = []
    for index, ticket in enumerate(batch.spec.tickets):
        spec: dict[str, object] = {
            "title": title_of(ticket.raw_description),
            "description": ticket.raw_description,
            "complexity": ticket.estimated_complexity,
            "priority": ticket.priority,
            "tags": list(ticket.tags),
        }
        done = refined.get(ticket.id)
        if done is not None:
            spec.update(
                {
                    "title": done.title,
                    "description": done.description or ticket.raw_description,
                    "acceptanceCriteria": list(done.acceptance_criteria),
                    "complexity": done.complexity or ticket.estimated_complexity,
                    "priority": done.priority or ticket.priority,
                    "tags": list(done.tags or ticket.tags),
                    "suggestedAgentType": done.agent_type,
                    "likelyFiles": list(done.likely_files),
                }
            )
        deps = dependencies.get(ticket.id, ticket.dependencies)
        spec["dependencies"] = [cached_task_name(batch.name, d) for d in deps]
        tasks.append(_task(batch, index, ticket.id, spec))
    return tasks


def run_name_clash(tasks: Sequence[AgentTask], stages: Sequence[str]) -> str | None:
    """Why two (task, stage) pairs would share run names, or None.

    `<task>-<stage>-<attempt>` is ambiguous when names contain '-': ticket `x` with stage
    `qa-review` and ticket `x-qa` with stage `review` both give `...-x-qa-review-1`.
    """
    seen: dict[str, tuple[str, str]] = {}
    for task in tasks:
        for stage in stages:
            name = run_name(task.name, stage, 1)
            if name in seen:
                other_ticket, other_stage = seen[name]
                return (
                    f"ticket {other_ticket} stage {other_stage} and ticket {task.spec.ticket_id} "
                    f"stage {stage} would share the run name {name}; rename a ticket or a stage"
                )
            seen[name] = (task.spec.ticket_id or task.name, stage)
    return None


def task_workflow(
    task: AgentTask,
    batch: TicketBatch | None,
    project: Project | None,
    workflows: Mapping[str, Workflow],
) -> Workflow | None:
    """The task's own workflow when it exists, else its batch's, else its project's default."""
    own = task.spec.workflow_ref
    if own is not None and own.name in workflows:
        return workflows[own.name]
    ref = (batch.spec.workflow_ref if batch else None) or (
        project.spec.default_workflow_ref if project else None
    )
    return workflows.get(ref.name) if ref else None
