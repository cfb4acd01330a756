"""`decide(snapshot) -> actions`: every scheduling judgement of agentfleet, as a pure function.

Both drivers (the local loop and the kopf operator) observe the world into a Snapshot, call
`decide`, and apply what it returns. Same snapshot in, same actions out: nothing here reads a
clock, a file or a process, and every collection is walked in a fixed order.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import NamedTuple

from ..models.batch import (
    BatchPhase,
    ExecutionStrategy,
    TaskCounts,
    TicketBatch,
    TicketBatchStatus,
    TicketEntry,
)
from ..models.meta import AgentType, ConditionStatus, Priority
from ..models.run import Attempt, AttemptPhase, ObservedRun, RefinedTicket, RunKind, RunPhase
from ..models.task import ACTION_ANNOTATION, AgentTask, HumanAction, TaskPhase
from ..models.workflow import Workflow
from .actions import (
    Action,
    ClearAnnotation,
    CreateTask,
    RecordEvent,
    RunRequest,
    SetStatus,
    StartRun,
)
from .conditions import set_condition
from .dag import critical_path_lengths, topological_order
from .naming import refinement_run_name
from .planning import check_refined, tasks_from_refined, tasks_from_tickets
from .schedule import Candidate, TaskInfo, admit, fill_slots, ordering_key
from .snapshot import Snapshot
from .taskflow import Context, TaskFlow, agent_candidates

BATCH = "TicketBatch"
REFINEMENT_ATTEMPTS = 2
_FAILED_DEPENDENCY = frozenset({TaskPhase.FAILED, TaskPhase.DEPENDENCY_FAILED, TaskPhase.ABORTED})
_SATISFYING = frozenset({TaskPhase.SUCCEEDED, TaskPhase.SKIPPED})
_SETTLED = frozenset({TaskPhase.SUCCEEDED, TaskPhase.FAILED, TaskPhase.SKIPPED, TaskPhase.ABORTED})
"""Phases nothing but a human or a live run can move; DependencyFailed can be revived."""
_HOLDS_RUNS = frozenset({TaskPhase.RUNNING, TaskPhase.AWAITING_APPROVAL})
_FINISHED_RUN = frozenset({RunPhase.SUCCEEDED, RunPhase.FAILED})
_BUSY = frozenset({TaskPhase.RUNNING, TaskPhase.AWAITING_APPROVAL, TaskPhase.ESCALATED})
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
    world = _World(snapshot)
    for batch in sorted(
        snapshot.batches,
        key=lambda b: (
            b.metadata.creation_timestamp is None,
            b.metadata.creation_timestamp,
            b.name,
        ),
    ):
        _BatchReconciler(world, batch).reconcile()
    return world.ctx.actions


Shape = tuple[tuple[str, tuple[str, ...], int, Priority, int], ...]


@lru_cache(maxsize=32)
def _analyse(shape: Shape) -> tuple[list[str], dict[str, list[str]], dict[str, TaskInfo]]:
    """Order, graph and scheduling keys of a batch's tasks.

    Memoised on what they derive from (names, dependencies, complexity, priority, order):
    that rarely changes between two calls, and a 10,000-task batch would otherwise pay for
    the walk every time.
    """
    names = {entry[0] for entry in shape}
    graph = {name: [d for d in deps if d in names] for name, deps, *_ in shape}
    weights = {name: float(weight) for name, _deps, weight, *_ in shape}
    critical = critical_path_lengths(graph, weights)
    infos = {
        name: TaskInfo(name, priority.rank, order, critical[name])
        for name, _deps, _weight, priority, order in shape
    }
    return topological_order(graph), graph, infos


_PHASES = {p.value: p for p in TaskPhase}


def task_phase(task: AgentTask) -> TaskPhase:
    status = task.status
    return _PHASES[status.phase] if status is not None and status.phase else TaskPhase.PENDING


class _Row(NamedTuple):
    """What `decide()` reads of a task model, read once per model object."""

    name: str
    task: AgentTask
    batch: str | None
    phase: TaskPhase
    shape: tuple[str, tuple[str, ...], int, Priority, int]
    flagged: bool  # no status yet, or a human's action annotation waits


_ROWS: dict[int, _Row] = {}
_ROWS_LIMIT = 250_000


def _row(task: AgentTask) -> _Row:
    """Read a task model once and remember it by identity.

    A snapshot's objects are never changed in place (drivers replace an object that
    changed), so the same object always reads the same. Reading pydantic models is what a
    10,000-task call spends most on; the memo keeps each object alive while remembered, so
    its id cannot be reused by another.
    """
    meta, spec, status = task.metadata, task.spec, task.status
    ref = spec.batch_ref
    annotations = meta.annotations
    row = _Row(
        meta.name,
        task,
        ref.name if ref is not None else None,
        _PHASES[status.phase] if status is not None and status.phase else TaskPhase.PENDING,
        (meta.name, tuple(spec.dependencies), spec.complexity or 1, spec.priority, spec.order),
        status is None or bool(annotations and ACTION_ANNOTATION in annotations),
    )
    if len(_ROWS) >= _ROWS_LIMIT:
        _ROWS.clear()
    _ROWS[id(task)] = row
    return row


class _World:
    """Indexes over the snapshot, and the agents' free slots as runs are handed out."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        runs_by_task: dict[str, list[ObservedRun]] = defaultdict(list)
        runs_by_name: dict[str, ObservedRun] = {}
        self.live_tasks: set[str] = set()
        self.in_flight: dict[str, tuple[str, str | None]] = {}
        """Every run holding a slot, by name: observed unfinished, or recorded as running."""
        for run in snapshot.runs:
            runs_by_name[run.name] = run
            live = run.phase not in _FINISHED_RUN
            if live:
                self.in_flight[run.name] = (run.agent, run.batch)
            if run.task:
                runs_by_task[run.task].append(run)
                if live:
                    self.live_tasks.add(run.task)
        self.ctx = Context(
            now=snapshot.now,
            agents=snapshot.agents,
            runs_by_name=runs_by_name,
            runs_by_task=runs_by_task,
        )
        self.tasks_by_batch: dict[str, list[AgentTask]] = defaultdict(list)
        self.rows_by_batch: dict[str, list[_Row]] = defaultdict(list)
        self.task_batch: dict[str, str | None] = {}
        for task in snapshot.tasks:
            row = _ROWS.get(id(task))
            if row is None or row.task is not task:
                row = _row(task)
            batch = row.batch
            self.task_batch[row.name] = batch
            if batch is not None:
                self.tasks_by_batch[batch].append(task)
                self.rows_by_batch[batch].append(row)
            if row.phase in _HOLDS_RUNS and task.status is not None:
                self._recorded_runs([stage.attempts for stage in task.status.stages], batch)
        for batch_obj in snapshot.batches:
            if batch_obj.status and batch_obj.status.refinement_attempts:
                self._recorded_runs([batch_obj.status.refinement_attempts], batch_obj.metadata.name)
        busy: dict[str, int] = defaultdict(int)
        for agent, _batch in self.in_flight.values():
            busy[agent] += 1
        self.agent_free: dict[str, int | None] = {
            name: None if cap is None else cap - busy[name]
            for name, cap in sorted(
                (n, a.spec.max_parallel_tasks) for n, a in snapshot.agents.items()
            )
        }

    def _recorded_runs(self, histories: Iterable[list[Attempt]], batch: str | None) -> None:
        """Runs a status records as running count as in flight even before they are seen."""
        for attempts in histories:
            if not attempts:
                continue
            last = attempts[-1]
            if last.phase != AttemptPhase.RUNNING:
                continue
            observed = self.ctx.runs_by_name.get(last.run_name)
            if observed is None or observed.phase not in _FINISHED_RUN:
                self.in_flight[last.run_name] = (last.agent, batch)

    def batch_in_flight(self, batch: str) -> int:
        return sum(1 for _agent, b in self.in_flight.values() if b == batch)


@dataclass
class _Refs:
    workflow: Workflow
    project: str
    candidates: dict[str, list[str]]


class _BatchReconciler:
    def __init__(self, world: _World, batch: TicketBatch) -> None:
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
        self.tasks = world.tasks_by_batch.get(batch.name, [])
        self.planned_now = False

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
            self._abort_all("Aborted", "aborted by a human")
            self._emit_status()
            return
        refs = self._resolve()
        if refs is None:
            self._emit_status()
            return
        if self.phase == BatchPhase.PENDING:
            self.status.start_time = self.status.start_time or self.ctx.now
            if self.spec.refinement.enabled:
                self.set_phase(BatchPhase.REFINING, "Refining", "refining tickets into tasks")
            else:
                self._plan(None)
        if self.phase == BatchPhase.REFINING:
            self._refine()
        if self.phase == BatchPhase.REFINED and self.spec.execute:
            self.set_phase(BatchPhase.PROCESSING, "Processing", "running tasks")
        if self.phase == BatchPhase.PROCESSING:
            self._process(refs)
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

    def _resolve(self) -> _Refs | None:
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
                snap.agents,
            )
            for stage in workflow.spec.stages
        }
        missing = [name for name, agents in candidates.items() if not agents]
        if missing:
            stage = workflow.spec.stage(missing[0])
            wanted = stage.agent_ref.name if stage.agent_ref else f"of type {stage.agent_type}"
            self._waiting("AgentNotFound", f"stage {missing[0]!r} has no agent {wanted}")
            return None
        if self.spec.refinement.enabled and self._refinement_agent() is None:
            self._waiting("AgentNotFound", "no agent for refinement")
            return None
        return _Refs(workflow, project.name, candidates)

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

    # --- refinement ------------------------------------------------------------------------

    def _refinement_agent(self) -> str | None:
        snap = self.world.snapshot
        refinement = self.spec.refinement
        if refinement.agent_ref is not None:
            return refinement.agent_ref.name if refinement.agent_ref.name in snap.agents else None
        agent_type = refinement.agent_type or AgentType.DEVELOPMENT
        assigned = self.spec.agent_assignments.get(agent_type)
        if assigned is not None:
            return assigned if assigned in snap.agents else None
        of_type = sorted(n for n, a in snap.agents.items() if a.spec.agent_type == agent_type)
        return of_type[0] if of_type else None

    def _refine(self) -> None:
        attempts = self.status.refinement_attempts
        last = attempts[-1] if attempts else None
        if last is not None and last.phase == AttemptPhase.RUNNING:
            run = self.ctx.runs_by_name.get(last.run_name)
            if run is None:
                self._request_refinement(last)
                return
            config = self.world.snapshot.agents.get(last.agent)
            timeout = config.spec.timeout_seconds if config else None
            started = run.start_time or last.start_time or self.ctx.now
            overdue = timeout is not None and self.ctx.now >= started + timedelta(seconds=timeout)
            if not run.phase.finished and not overdue:
                return
            last.finish_time = run.finish_time or self.ctx.now
            result = run.result
            refined = result.refined_tickets if result else None
            problem = None
            if not run.phase.finished:
                self.ctx.cancel(run.name, "DeadlineExceeded", f"refinement timeout of {timeout}s")
                problem = f"ran past the refinement timeout of {timeout}s"
                last.reason = "DeadlineExceeded"
            elif (
                run.phase != RunPhase.SUCCEEDED
                or result is None
                or (result.outcome != AttemptPhase.SUCCEEDED)
            ):
                problem = (result.message if result else "") or run.message or "refinement failed"
                last.reason = (result.reason if result else "") or run.reason or "Error"
            elif refined is None:
                problem, last.reason = "the refinement returned no tickets", "InvalidRefinement"
            else:
                problem = check_refined(self.batch, refined)
                last.reason = "InvalidRefinement" if problem else "Succeeded"
            if problem is None and refined is not None:
                last.phase = AttemptPhase.SUCCEEDED
                self._plan(refined)
                return
            last.phase = AttemptPhase.FAILED
            last.message = problem or ""
            self.event("RefinementFailed", problem or "", warning=True)
            if len(attempts) >= REFINEMENT_ATTEMPTS:
                self.set_phase(BatchPhase.FAILED, "RefinementFailed", problem or "")
                return
        if self.world.batch_in_flight(self.batch.name) >= self.spec.parallel_limit:
            return
        agent = self._refinement_agent()
        assert agent is not None
        free = self.world.agent_free.get(agent)
        if free is not None and free <= 0:
            return
        number = len(attempts) + 1
        attempt = Attempt(
            attempt=number,
            agent=agent,
            run_name=refinement_run_name(self.batch.name, number),
            start_time=self.ctx.now,
        )
        attempts.append(attempt)
        if free is not None:
            self.world.agent_free[agent] = free - 1
        self.world.in_flight[attempt.run_name] = (agent, self.batch.name)
        self._request_refinement(attempt)
        self.event("RunStarted", f"run {attempt.run_name} started with agent {agent}")

    def _request_refinement(self, attempt: Attempt) -> None:
        agent = self.world.snapshot.agents.get(attempt.agent)
        self.ctx.actions.append(
            StartRun(
                RunRequest(
                    name=attempt.run_name,
                    kind=RunKind.REFINEMENT,
                    batch=self.batch.name,
                    task=None,
                    stage="refine",
                    attempt=attempt.attempt,
                    agent=attempt.agent,
                    project=self.spec.project_ref.name,
                    timeout_seconds=agent.spec.timeout_seconds if agent else None,
                )
            )
        )

    def _refined_tickets(self) -> list[RefinedTicket] | None:
        for attempt in reversed(self.status.refinement_attempts):
            if attempt.phase == AttemptPhase.SUCCEEDED:
                run = self.ctx.runs_by_name.get(attempt.run_name)
                if run is not None and run.result is not None:
                    return run.result.refined_tickets
        return None

    # --- tasks -----------------------------------------------------------------------------

    def _plan(self, refined: Sequence[RefinedTicket] | None) -> None:
        """Create the batch's tasks; from now on the ticket entries name them."""
        tasks = (
            tasks_from_refined(self.batch, refined) if refined else tasks_from_tickets(self.batch)
        )
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
        if self.spec.execute:
            self.set_phase(BatchPhase.PROCESSING, "Processing", f"{len(tasks)} tasks")
        else:
            self.set_phase(BatchPhase.REFINED, "Refined", f"{len(tasks)} tasks wait for execute")

    def _ensure_tasks(self, existing: Mapping[str, AgentTask]) -> None:
        """Re-create tasks lost since planning (a crash between status and create, a delete)."""
        if self.planned_now or all(e.task in existing for e in self.status.tickets if e.task):
            return
        refined = self._refined_tickets() if self.spec.refinement.enabled else None
        if self.spec.refinement.enabled and refined is None:
            return
        planned = (
            tasks_from_refined(self.batch, refined) if refined else tasks_from_tickets(self.batch)
        )
        for task in planned:
            if task.name not in existing:
                self.ctx.actions.append(CreateTask(task))

    def _flow_factory(
        self, refs: _Refs, flows: dict[str, TaskFlow]
    ) -> Callable[[AgentTask], TaskFlow]:
        snap = self.world.snapshot

        def flow_of(task: AgentTask) -> TaskFlow:
            if task.name not in flows:
                workflow = refs.workflow
                if task.spec.workflow_ref and task.spec.workflow_ref.name in snap.workflows:
                    workflow = snap.workflows[task.spec.workflow_ref.name]
                candidates = refs.candidates
                if task.spec.agent_assignments or workflow is not refs.workflow:
                    project = snap.projects[refs.project]
                    candidates = {
                        s.name: agent_candidates(
                            s,
                            task,
                            self.spec.agent_assignments,
                            project.spec.default_agent_assignments,
                            snap.agents,
                        )
                        for s in workflow.spec.stages
                    }
                flows[task.name] = TaskFlow(task, workflow, self.ctx, candidates, refs.project)
            return flows[task.name]

        return flow_of

    def _process(self, refs: _Refs) -> None:
        """Walk tasks dependencies-first, so a failure reaches every dependent in one call.

        Most tasks of a large batch are settled or waiting; they cost a dictionary lookup and
        a look at their dependencies. Only tasks with something to observe get a TaskFlow.
        """
        rows = self.world.rows_by_batch.get(self.batch.name, [])
        by_name = {row.name: row.task for row in rows}
        self._ensure_tasks(by_name)
        order, graph, infos = _analyse(tuple(row.shape for row in rows))
        waves = self.spec.strategy is ExecutionStrategy.PARALLEL_BATCH
        flows: dict[str, TaskFlow] = {}
        flow_of = self._flow_factory(refs, flows)
        ready: dict[str, TaskInfo] = {}
        abort = False
        live = self.world.live_tasks
        observed = self.ctx.runs_by_task

        def gate(task: AgentTask, name: str) -> None:
            """An unstarted task: doomed by a failed dependency, ready, or still waiting.

            Under AbortAll, once a task has failed nothing is gated: the abort takes them all.
            """
            if abort:
                return
            satisfied = True
            for dep in graph[name]:
                dep_phase = phases[dep]
                if dep_phase in _FAILED_DEPENDENCY:
                    flow = flow_of(task)
                    flow.set_phase(
                        TaskPhase.DEPENDENCY_FAILED,
                        "DependencyFailed",
                        f"dependency {dep} ended {dep_phase}",
                    )
                    phases[name] = flow.phase
                    return
                if dep_phase not in _SATISFYING:
                    satisfied = False
            if satisfied:
                info = infos[name]
                if waves and task.status is not None and task.status.wave is not None:
                    info = info._replace(wave=task.status.wave)
                ready[name] = info

        phases = {
            name: _PHASES[t.status.phase]
            if t.status is not None and t.status.phase
            else (TaskPhase.PENDING)
            for name, t in by_name.items()
        }
        special = {
            name
            for name, t in by_name.items()
            if t.status is None
            or name in live
            or (name in observed and phases[name] == TaskPhase.PENDING)
            or (t.metadata.annotations and ACTION_ANNOTATION in t.metadata.annotations)
        }
        for name in [n for n in order if phases[n] not in _SETTLED or n in special]:
            task = by_name[name]
            phase = phases[name]
            if name not in special and phase not in _BUSY:
                if phase == TaskPhase.PENDING:
                    gate(task, name)
                elif not any(phases[d] in _FAILED_DEPENDENCY for d in graph[name]):
                    flow = flow_of(task)
                    flow.set_phase(TaskPhase.PENDING, "DependencyRetried", "dependencies retried")
                    phases[name] = flow.phase
                    gate(task, name)
                continue
            flow = flow_of(task)
            flow.apply_human_action()
            if not flow.phase.terminal:
                flow.observe_runs()
                flow.record_approvals()
                flow.handle_failures()
            flow.adopt_orphans()
            if not flow.phase.terminal:
                flow.settle()
            phases[name] = flow.phase
            abort = abort or flow.abort_batch
            if flow.phase == TaskPhase.PENDING:
                gate(task, name)

        if abort:
            self._abort_all("AbortAll", "a task failed under the AbortAll strategy", flows)
            return
        active = [n for n, f in flows.items() if f.phase in _HOLDS_RUNS]
        self._schedule(flow_of, by_name, phases, active, ready, infos)
        for flow in flows.values():
            flow.settle()
            phases[flow.name] = flow.phase
        for name in sorted(flows):
            action = flows[name].status_action()
            if action is not None:
                self.ctx.actions.append(action)
        self._summarise(phases)

    def _schedule(
        self,
        flow_of: Callable[[AgentTask], TaskFlow],
        by_name: Mapping[str, AgentTask],
        phases: Mapping[str, TaskPhase],
        active: list[str],
        ready: Mapping[str, TaskInfo],
        infos: Mapping[str, TaskInfo],
    ) -> None:
        """Admit new tasks by the strategy, then hand out the free slots in key order."""
        strategy = self.spec.strategy
        wave = self.status.current_wave
        unfinished_in_wave = 0
        if strategy is ExecutionStrategy.PARALLEL_BATCH and wave is not None:
            unfinished_in_wave = sum(
                1
                for t in self.tasks
                if t.status is not None and t.status.wave == wave and not phases[t.name].terminal
            )
        admission = admit(
            strategy,
            ready=[t for t in ready.values() if t.wave is None],
            active=len(active),
            unfinished_in_wave=unfinished_in_wave,
            current_wave=wave,
            batch_size=self.spec.batch_size or self.spec.parallel_limit,
        )
        admitted = list(admission.admitted)
        if strategy is ExecutionStrategy.PARALLEL_BATCH:
            if admitted:
                self.status.current_wave = admission.wave
                for name in admitted:
                    flow_of(by_name[name]).status.wave = admission.wave
                self.event("WaveStarted", f"wave {admission.wave}: {', '.join(admitted)}")
            admitted += [t.name for t in ready.values() if t.wave is not None and t.wave == wave]
        free = self.spec.parallel_limit - self.world.batch_in_flight(self.batch.name)
        if free <= 0:
            return
        queue = [
            (ordering_key(strategy, info), info)
            for info in (ready.get(name) or infos[name] for name in [*active, *admitted])
        ]
        heapq.heapify(queue)

        def candidates() -> Iterator[Candidate]:
            """Lazily, in key order: a flow is only built for tasks a slot may reach.

            A heap, not a sort: one freed slot in a batch of thousands of ready tasks needs
            only the first few of them.
            """
            while queue:
                key, info = heapq.heappop(queue)
                flow = flow_of(by_name[info.name])
                for stage_name in flow.startable_stages():
                    agent = flow.next_agent(flow.stage_status(stage_name))
                    if agent is not None:
                        yield Candidate(info.name, stage_name, agent, key)

        chosen, self.world.agent_free = fill_slots(
            candidates(), free_slots=free, agent_free=self.world.agent_free
        )
        for candidate in chosen:
            flow = flow_of(by_name[candidate.task])
            run = flow.start(candidate.stage, candidate.agent)
            self.world.in_flight[run] = (candidate.agent, self.batch.name)

    def _abort_all(
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
        self._summarise(phases)
        self.set_phase(BatchPhase.FAILED, reason, message)
        self._cancel_leftovers()

    def _cancel_leftovers(self) -> None:
        """Runs still alive in a finished batch (a cancel lost in a crash) are cancelled again."""
        for run in self.world.snapshot.runs:
            if run.batch == self.batch.name and not run.phase.finished:
                owner = next((t for t in self.tasks if t.name == run.task), None)
                if owner is None or task_phase(owner).terminal or self.phase.terminal:
                    self.ctx.cancel(run.name, "BatchFinished", "batch is finished")

    # --- status ----------------------------------------------------------------------------

    def _summarise(self, phases: Mapping[str, TaskPhase]) -> None:
        wanted = [e.task for e in self.status.tickets if e.task] or list(phases)
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
            - (counts.escalated)
        )
        self.status.progress = f"{finished}/{len(wanted)}"
        entries = self.status.tickets
        for index, entry in enumerate(entries):
            phase = phases.get(entry.task or "", TaskPhase.PENDING)
            if entry.phase != phase:
                entries[index] = TicketEntry.model_construct(
                    id=entry.id, task=entry.task, phase=phase.value
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

    def _emit_status(self) -> None:
        self.status.observed_generation = self.batch.metadata.generation
        if self.status != self.original:
            self.ctx.actions.append(SetStatus(BATCH, self.batch.name, self.status))
