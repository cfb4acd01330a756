"""`decide(snapshot) -> actions`: every scheduling judgement of agentfleet, as a pure function.

Both drivers (the local loop and the kopf operator) observe the world into a Snapshot, call
`decide`, and apply what it returns. Same snapshot in, same actions out: nothing here reads a
clock, a file or a process, and every collection is walked in a fixed order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..models.batch import (
    BatchPhase,
    TaskCounts,
    TicketBatch,
    TicketBatchStatus,
    TicketEntry,
)
from ..models.meta import ConditionStatus
from ..models.run import AttemptPhase, RefinedTicket, Usage, total_usage
from ..models.task import ACTION_ANNOTATION, AgentTask, HumanAction, TaskPhase
from ..models.workflow import Workflow
from .actions import Action, ClearAnnotation, CreateTask, RecordEvent, SetStatus
from .conditions import set_condition
from .configs import config_statuses
from .planning import run_name_clash, tasks_from_refined, tasks_from_tickets
from .processing import process_tasks
from .refinement import merged_dependencies, refine, refined_tickets, refinement_agent
from .snapshot import Snapshot
from .taskflow import TaskFlow, agent_candidates
from .world import World, task_phase

BATCH = "TicketBatch"
TASK = "AgentTask"
_COUNT_FIELD = {
    TaskPhase.PENDING: "pending",
    TaskPhase.RUNNING: "running",
    TaskPhase.AWAITING_APPROVAL: "awaiting_approval",
    TaskPhase.ESCALATED: "escalated",
    TaskPhase.SUCCEEDED: "succeeded",
    TaskPhase.FAILED: "failed",
    TaskPhase.DEPENDENCY_FAILED: "dependency_failed",
    TaskPhase.SKIPPED: "skipped",
    TaskPhase.ABORTED: "aborted",
}


def decide(snapshot: Snapshot) -> list[Action]:
    """The actions that move every batch and task of `snapshot` forward, in order to apply."""
    world = World(snapshot)
    for batch in sorted(
        snapshot.batches,
        key=lambda b: (
            b.metadata.creation_timestamp is None,
            b.metadata.creation_timestamp,
            b.name,
        ),
    ):
        BatchReconciler(world, batch).reconcile()
    world.ctx.actions.extend(config_statuses(world))
    return world.ctx.actions


@dataclass
class Refs:
    workflow: Workflow
    project: str
    candidates: dict[str, list[str]]


class BatchReconciler:
    def __init__(self, world: World, batch: TicketBatch) -> None:
        self.world = world
        self.ctx = world.ctx
        self.batch = batch
        self.spec = batch.spec
        self.original = batch.status
        self.status = (
            batch.status.model_copy(
                update={
                    "refinement_attempts": [
                        a.model_copy() for a in batch.status.refinement_attempts
                    ],
                    "conditions": list(batch.status.conditions),
                    "tickets": list(batch.status.tickets),
                }
            )
            if batch.status
            else TicketBatchStatus()
        )
        if self.status.phase is None:
            self.status.phase = BatchPhase.PENDING
        self.rows = world.rows_by_batch.get(batch.name, [])
        self.tasks = [row.task for row in self.rows]
        self.planned_now = False
        self.refs: Refs | None = None
        self.fresh_usage: dict[str, Usage] = {}

    @property
    def phase(self) -> BatchPhase:
        return BatchPhase(self.status.phase or BatchPhase.PENDING)

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        self.ctx.actions.append(
            RecordEvent(BATCH, self.batch.name, "Warning" if warning else "Normal", reason, message)
        )

    def set_phase(self, phase: BatchPhase, reason: str, message: str) -> None:
        if phase != self.phase:
            if phase.terminal:
                self.event(
                    "BatchSucceeded" if phase == BatchPhase.SUCCEEDED else "BatchFailed",
                    message,
                    warning=phase == BatchPhase.FAILED,
                )
            self.status.completion_time = self.ctx.now if phase.terminal else None
        self.status.phase = phase
        state = {
            BatchPhase.SUCCEEDED: ConditionStatus.TRUE,
            BatchPhase.FAILED: ConditionStatus.FALSE,
        }.get(phase, ConditionStatus.UNKNOWN)
        self.status.conditions = set_condition(
            self.status.conditions,
            "Succeeded",
            state,
            reason,
            message,
            self.ctx.now,
            self.batch.metadata.generation,
        )

    # --- the batch's life ------------------------------------------------------------------

    def reconcile(self) -> None:
        requested = self.batch.metadata.annotations.get(ACTION_ANNOTATION)
        if self.phase.terminal and not self._reopened():
            if requested is not None:
                self.ctx.actions.append(ClearAnnotation(BATCH, self.batch.name, ACTION_ANNOTATION))
            for task in self.tasks:
                raw = task.metadata.annotations.get(ACTION_ANNOTATION)
                if raw is not None:
                    self.ctx.actions.append(ClearAnnotation(TASK, task.name, ACTION_ANNOTATION))
                    self.ctx.actions.append(
                        RecordEvent(
                            TASK,
                            task.name,
                            "Warning",
                            "ActionIgnored",
                            f"{ACTION_ANNOTATION}={raw!r} does not apply: batch "
                            f"{self.batch.name} is {self.phase} and only a retry of a Failed, "
                            "Aborted or Escalated task reopens it",
                        )
                    )
            self._cancel_leftovers()
            self._emit_status()
            return
        if requested is not None and requested.strip().lower() != HumanAction.ABORT:
            self.ctx.actions.append(ClearAnnotation(BATCH, self.batch.name, ACTION_ANNOTATION))
            self.event(
                "UnknownAction",
                f"ignored {ACTION_ANNOTATION}={requested!r}: only 'abort' applies to a batch",
                warning=True,
            )
        if requested is not None and requested.strip().lower() == HumanAction.ABORT:
            self.ctx.actions.append(ClearAnnotation(BATCH, self.batch.name, ACTION_ANNOTATION))
            self.abort_all("Aborted", "aborted by a human")
            self._emit_status()
            return
        refs = self.refs = self._resolve()
        if refs is None:
            self._emit_status()
            return
        if self.phase == BatchPhase.PENDING:
            self.status.start_time = self.status.start_time or self.ctx.now
            if self.spec.refinement.enabled:
                self.set_phase(BatchPhase.REFINING, "Refining", "refining tickets into tasks")
            else:
                self.plan(None)
        if self.phase == BatchPhase.REFINING:
            refine(self)
        if self.phase == BatchPhase.REFINED and self.spec.execute:
            self.set_phase(BatchPhase.PROCESSING, "Processing", "running tasks")
        if self.phase == BatchPhase.PROCESSING:
            process_tasks(self, refs)
        self._emit_status()

    def _reopened(self) -> bool:
        """A human's retry of a failed task brings a finished batch back to work."""
        for task in self.tasks:
            if task.requested_action() is HumanAction.RETRY and task_phase(task) in (
                TaskPhase.FAILED,
                TaskPhase.ABORTED,
                TaskPhase.ESCALATED,
            ):
                self.set_phase(BatchPhase.PROCESSING, "Retried", f"task {task.name} retried")
                return True
        return False

    def _resolve(self) -> Refs | None:
        """The batch's project, workflow and agents, or a Pending batch that says what's missing.

        Manifests arrive in any order (`kubectl apply -f dir/`), so a missing reference waits
        rather than fails.
        """
        snap = self.world.snapshot
        project = snap.projects.get(self.spec.project_ref.name)
        if project is None:
            self._waiting("ProjectNotFound", f"project {self.spec.project_ref.name!r} not found")
            return None
        ref = self.spec.workflow_ref or project.spec.default_workflow_ref
        if ref is None:
            self._waiting("WorkflowNotSet", "neither the batch nor its project names a workflow")
            return None
        workflow = snap.workflows.get(ref.name)
        if workflow is None:
            self._waiting("WorkflowNotFound", f"workflow {ref.name!r} not found")
            return None
        probe = AgentTask.model_validate({"metadata": {"name": "probe"}, "spec": {"title": "-"}})
        candidates = {
            stage.name: agent_candidates(
                stage,
                probe,
                self.spec.agent_assignments,
                project.spec.default_agent_assignments,
                self.world.registry,
            )
            for stage in workflow.spec.stages
        }
        missing = [name for name, agents in candidates.items() if not agents]
        if missing:
            stage = workflow.spec.stage(missing[0])
            wanted = stage.agent_ref.name if stage.agent_ref else f"of type {stage.agent_type}"
            self._waiting("AgentNotFound", f"stage {missing[0]!r} has no agent {wanted}")
            return None
        if self.spec.refinement.enabled and refinement_agent(self) is None:
            self._waiting("AgentNotFound", "no agent for refinement")
            return None
        return Refs(workflow, project.name, candidates)

    def _waiting(self, reason: str, message: str) -> None:
        """Say on the batch what it waits for; the caller then returns no references."""
        if self.phase == BatchPhase.PENDING:
            self.set_phase(BatchPhase.PENDING, reason, message)
        else:
            self.status.conditions = set_condition(
                self.status.conditions,
                "Succeeded",
                ConditionStatus.UNKNOWN,
                reason,
                message,
                self.ctx.now,
                self.batch.metadata.generation,
            )
        return None

    # --- tasks -----------------------------------------------------------------------------

    def plan_refined(
        self,
        refined: Mapping[str, RefinedTicket],
        dependencies: Mapping[str, Sequence[str]],
        invalid: Mapping[str, str],
    ) -> None:
        """Plan from a finished refinement; tickets it could not refine are marked and fail."""
        self.plan(tasks_from_refined(self.batch, refined, dependencies), invalid)

    def plan(self, tasks: list[AgentTask] | None, invalid: Mapping[str, str] | None = None) -> None:
        """Create the batch's tasks; from now on the ticket entries name them."""
        if tasks is None:
            tasks = tasks_from_tickets(self.batch)
        if self.refs is not None:
            clash = run_name_clash(tasks, [s.name for s in self.refs.workflow.spec.stages])
            if clash:
                self.set_phase(BatchPhase.FAILED, "RunNameConflict", clash)
                return
        for task in tasks:
            owner = self.world.task_batch.get(task.name, self.batch.name)
            if owner != self.batch.name:
                self.set_phase(
                    BatchPhase.FAILED,
                    "TaskNameConflict",
                    f"task {task.name} (ticket {task.spec.ticket_id}) already belongs to "
                    f"{'batch ' + owner if owner else 'no batch'}; rename the batch or the ticket",
                )
                return
        for task in tasks:
            self.world.task_batch[task.name] = self.batch.name
        self.planned_now = True
        existing = {t.name for t in self.tasks}
        for task in tasks:
            if task.name not in existing:
                self.ctx.actions.append(CreateTask(task))
                self.ctx.actions.append(
                    RecordEvent(
                        BATCH,
                        self.batch.name,
                        "Normal",
                        "TaskCreated",
                        f"task {task.name} for ticket {task.spec.ticket_id}",
                    )
                )
        self.status.tickets = [
            TicketEntry(id=t.spec.ticket_id or t.name, task=t.name) for t in tasks
        ]
        for index, entry in enumerate(self.status.tickets):
            if invalid and entry.id in invalid:
                self.status.tickets[index] = entry.model_copy(
                    update={"reason": "InvalidRefinement", "message": invalid[entry.id]}
                )
        if self.spec.execute:
            self.set_phase(BatchPhase.PROCESSING, "Processing", f"{len(tasks)} tasks")
        else:
            self.set_phase(BatchPhase.REFINED, "Refined", f"{len(tasks)} tasks wait for execute")

    def ensure_tasks(self, existing: Mapping[str, AgentTask]) -> None:
        """Re-create tasks lost since planning (a crash between status and create, a delete)."""
        if self.planned_now or all(e.task in existing for e in self.status.tickets if e.task):
            return
        if self.spec.refinement.enabled:
            refined = refined_tickets(self)
            if refined is None:
                return
            planned = tasks_from_refined(
                self.batch, refined, merged_dependencies(self.batch, refined)
            )
        else:
            planned = tasks_from_tickets(self.batch)
        for task in planned:
            if task.name not in existing:
                self.ctx.actions.append(CreateTask(task))

    def abort_all(
        self, reason: str, message: str, flows: Mapping[str, TaskFlow] | None = None
    ) -> None:
        """Cancel every run of the batch, abort every unfinished task, fail the batch."""
        phases: dict[str, TaskPhase] = {}
        for task in self.tasks:
            flow = (flows or {}).get(task.name)
            if flow is None and task.status is not None and task_phase(task).terminal:
                phases[task.name] = task_phase(task)
                continue
            if flow is None:
                flow = TaskFlow(task, None, self.ctx, {}, None)
            if not flow.phase.terminal:
                flow.cancel_in_flight(reason, message)
                flow.set_phase(TaskPhase.ABORTED, reason, message)
            flow.settle()
            action = flow.status_action()
            if action is not None:
                self.ctx.actions.append(action)
            phases[task.name] = flow.phase
        for attempt in self.status.refinement_attempts:
            if attempt.phase == AttemptPhase.RUNNING:
                self.ctx.cancel(attempt.run_name, reason, message)
                attempt.phase = AttemptPhase.FAILED
                attempt.reason = reason
                attempt.finish_time = self.ctx.now
        self.summarise(phases)
        self.set_phase(BatchPhase.FAILED, reason, message)
        self._cancel_leftovers()

    def _cancel_leftovers(self) -> None:
        """Runs still alive in a finished batch (a cancel lost in a crash) are cancelled again."""
        for run in self.world.snapshot.runs:
            if run.batch == self.batch.name and not run.phase.finished:
                self.ctx.cancel(run.name, "BatchFinished", "batch is finished")

    # --- status ----------------------------------------------------------------------------

    def summarise(self, phases: Mapping[str, TaskPhase]) -> None:
        planned = [e.task for e in self.status.tickets if e.task]
        known = set(planned)
        # A task made by hand that names this batch is part of it, counted like the others.
        wanted = planned + [name for name in phases if name not in known]
        tally = Counter(phases.values())
        missing = (
            sum(1 for name in wanted if name not in phases) if len(phases) < len(wanted) else 0
        )
        tally[TaskPhase.PENDING] += missing
        counts = TaskCounts(
            total=len(wanted), **{_COUNT_FIELD[p]: n for p, n in tally.items() if n}
        )
        self.status.counts = counts
        finished = (
            len(wanted)
            - counts.pending
            - counts.running
            - counts.awaiting_approval
            - counts.escalated
        )
        self.status.progress = f"{finished}/{len(wanted)}"
        entries = self.status.tickets
        for index, entry in enumerate(entries):
            phase = phases.get(entry.task or "", TaskPhase.PENDING)
            if entry.phase != phase:
                entries[index] = TicketEntry.model_construct(
                    id=entry.id,
                    task=entry.task,
                    phase=phase.value,
                    reason=entry.reason,
                    message=entry.message,
                )
        if self.phase != BatchPhase.PROCESSING:
            return
        if finished == len(wanted) and all(name in phases for name in wanted):
            good = counts.succeeded + counts.skipped == len(wanted)
            if good:
                self.set_phase(
                    BatchPhase.SUCCEEDED, "Succeeded", f"{counts.succeeded} tasks succeeded"
                )
            else:
                bad = counts.failed + counts.dependency_failed + counts.aborted
                self.set_phase(
                    BatchPhase.FAILED, "TasksFailed", f"{bad} of {len(wanted)} tasks failed"
                )
        elif counts.escalated:
            escalated = [n for n in wanted if phases.get(n) == TaskPhase.ESCALATED]
            self.set_phase(
                BatchPhase.PROCESSING,
                "Escalated",
                f"waiting for a human on {', '.join(escalated[:5])}",
            )
        elif counts.awaiting_approval and not counts.running:
            self.set_phase(BatchPhase.PROCESSING, "AwaitingApproval", "waiting for approvals")
        else:
            self.set_phase(
                BatchPhase.PROCESSING, "Processing", f"{self.status.progress} tasks done"
            )

    def _usage(self) -> Usage:
        """Every attempt of the batch: its tasks' (as settled this round) and its refinement's."""
        parts: list[Usage] = []
        for task in self.tasks:
            usage = self.fresh_usage.get(task.name) or (task.status.usage if task.status else None)
            if usage is not None:
                parts.append(usage)
        parts.extend(Usage.of(attempt) for attempt in self.status.refinement_attempts)
        return total_usage(parts)

    def _emit_status(self) -> None:
        self.status.observed_generation = self.batch.metadata.generation
        self.status.usage = self._usage()
        self.status.tokens = self.status.usage.tokens
        self.status.cost_usd = self.status.usage.cost_usd
        if self.status != self.original:
            self.ctx.actions.append(SetStatus(BATCH, self.batch.name, self.status))
