"""A batch's tasks, dependencies first: observe, gate, then hand out the free slots."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

from ..models.batch import ExecutionStrategy
from ..models.meta import Priority
from ..models.task import FAILS_DEPENDENTS, SATISFIES_DEPENDENTS, AgentTask, TaskPhase
from .dag import CycleError, critical_path_lengths, topological_order
from .schedule import Candidate, TaskInfo, admit, fill_slots, ordering_key
from .taskflow import TaskFlow, agent_candidates
from .world import HOLDS_RUNS

if TYPE_CHECKING:
    from .reconcile import BatchReconciler, Refs

_SETTLED = frozenset({TaskPhase.SUCCEEDED, TaskPhase.FAILED, TaskPhase.SKIPPED, TaskPhase.ABORTED})
"""Phases nothing but a human or a live run can move; DependencyFailed can be revived."""
_BUSY = frozenset({TaskPhase.RUNNING, TaskPhase.AWAITING_APPROVAL, TaskPhase.ESCALATED})


Shape = tuple[tuple[str, tuple[str, ...], int, Priority, int], ...]


@lru_cache(maxsize=32)
def _analyse(
    shape: Shape,
) -> tuple[list[str], dict[str, list[str]], set[str], dict[str, TaskInfo]]:
    """Order, graph and scheduling keys of a batch's tasks.

    Memoised on what they derive from (names, dependencies, complexity, priority, order):
    that rarely changes between two calls, and a 10,000-task batch would otherwise pay for
    the walk every time.
    """
    names = {entry[0] for entry in shape}
    graph = {name: [d for d in deps if d in names] for name, deps, *_ in shape}
    # A dependency not (yet) in the snapshot is never satisfied: its task may still come.
    missing = {name for name, deps, *_ in shape if any(d not in names for d in deps)}
    weights = {name: float(weight) for name, _deps, weight, *_ in shape}
    order = topological_order(graph)
    critical = critical_path_lengths(graph, weights, order)
    infos = {
        name: TaskInfo(name, priority.rank, order, critical[name])
        for name, _deps, _weight, priority, order in shape
    }
    return order, graph, missing, infos


def flow_factory(
    reconciler: BatchReconciler, refs: Refs, flows: dict[str, TaskFlow]
) -> Callable[[AgentTask], TaskFlow]:
    """A TaskFlow per task on first need: most tasks of a large batch never need one."""
    snap = reconciler.world.snapshot

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
                        reconciler.spec.agent_assignments,
                        project.spec.default_agent_assignments,
                        reconciler.world.registry,
                    )
                    for s in workflow.spec.stages
                }
            flows[task.name] = TaskFlow(task, workflow, reconciler.ctx, candidates, refs.project)
        return flows[task.name]

    return flow_of


def process_tasks(reconciler: BatchReconciler, refs: Refs) -> None:
    """Walk tasks dependencies-first, so a failure reaches every dependent in one call.

    Most tasks of a large batch are settled or waiting; they cost a dictionary lookup and
    a look at their dependencies. Only tasks with something to observe get a TaskFlow.
    """
    rows = reconciler.rows
    by_name = {row.name: row.task for row in rows}
    reconciler.ensure_tasks(by_name)
    try:
        order, graph, missing, infos = _analyse(tuple(row.shape for row in rows))
    except CycleError as exc:
        reconciler.abort_all("DependencyCycle", f"tasks form a {exc}; fix their dependencies")
        return
    waves = reconciler.spec.strategy is ExecutionStrategy.PARALLEL_BATCH
    flows: dict[str, TaskFlow] = {}
    flow_of = flow_factory(reconciler, refs, flows)
    ready: dict[str, TaskInfo] = {}
    abort = False
    live = reconciler.world.live_tasks
    invalid = {
        e.task: e.message or "its refinement was unusable"
        for e in reconciler.status.tickets
        if e.task and e.reason == "InvalidRefinement"
    }
    observed = reconciler.ctx.runs_by_task

    def gate(task: AgentTask, name: str) -> None:
        """An unstarted task: doomed by a failed dependency, ready, or still waiting.

        Under AbortAll, once a task has failed nothing is gated: the abort takes them all.
        """
        if abort:
            return
        unusable = invalid.get(name)
        if unusable is not None:
            flow = flow_of(task)
            flow.set_phase(TaskPhase.FAILED, "InvalidRefinement", unusable)
            phases[name] = flow.phase
            return
        satisfied = name not in missing
        for dep in graph[name]:
            dep_phase = phases[dep]
            if dep_phase in FAILS_DEPENDENTS:
                flow = flow_of(task)
                flow.set_phase(
                    TaskPhase.DEPENDENCY_FAILED,
                    "DependencyFailed",
                    f"dependency {dep} ended {dep_phase}",
                )
                phases[name] = flow.phase
                return
            if dep_phase not in SATISFIES_DEPENDENTS:
                satisfied = False
        if satisfied:
            info = infos[name]
            if waves and task.status is not None and task.status.wave is not None:
                info = info._replace(wave=task.status.wave)
            ready[name] = info

    phases = {row.name: row.phase for row in rows}
    special = {
        row.name
        for row in rows
        if row.flagged
        or row.name in live
        or (row.phase == TaskPhase.PENDING and row.name in observed)
    }
    for name in [n for n in order if phases[n] not in _SETTLED or n in special]:
        task = by_name[name]
        phase = phases[name]
        if name not in special and phase not in _BUSY:
            if phase == TaskPhase.PENDING:
                gate(task, name)
            elif not any(phases[d] in FAILS_DEPENDENTS for d in graph[name]):
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
        reconciler.abort_all("AbortAll", "a task failed under the AbortAll strategy", flows)
        return
    active = [n for n, f in flows.items() if f.phase in HOLDS_RUNS]
    schedule_tasks(reconciler, flow_of, by_name, phases, active, ready, infos)
    for flow in flows.values():
        flow.settle()
        phases[flow.name] = flow.phase
    for name in sorted(flows):
        action = flows[name].status_action()
        if action is not None:
            reconciler.ctx.actions.append(action)
        reconciler.fresh_usage[name] = flows[name].status.usage
    reconciler.summarise(phases)


def schedule_tasks(
    reconciler: BatchReconciler,
    flow_of: Callable[[AgentTask], TaskFlow],
    by_name: Mapping[str, AgentTask],
    phases: Mapping[str, TaskPhase],
    active: list[str],
    ready: Mapping[str, TaskInfo],
    infos: Mapping[str, TaskInfo],
) -> None:
    """Admit new tasks by the strategy, then hand out the free slots in key order."""
    strategy = reconciler.spec.strategy
    wave = reconciler.status.current_wave
    unfinished_in_wave = 0
    if strategy is ExecutionStrategy.PARALLEL_BATCH and wave is not None:
        unfinished_in_wave = sum(
            1
            for t in reconciler.tasks
            if t.status is not None and t.status.wave == wave and not phases[t.name].terminal
        )
    admission = admit(
        strategy,
        ready=[t for t in ready.values() if t.wave is None],
        active=len(active),
        unfinished_in_wave=unfinished_in_wave,
        current_wave=wave,
        batch_size=reconciler.spec.batch_size or reconciler.spec.parallel_limit,
    )
    admitted = list(admission.admitted)
    if strategy is ExecutionStrategy.PARALLEL_BATCH:
        if admitted:
            reconciler.status.current_wave = admission.wave
            for name in admitted:
                flow_of(by_name[name]).status.wave = admission.wave
            reconciler.event("WaveStarted", f"wave {admission.wave}: {', '.join(admitted)}")
        admitted += [t.name for t in ready.values() if t.wave is not None and t.wave == wave]
    free = reconciler.spec.parallel_limit - reconciler.world.batch_in_flight(reconciler.batch.name)
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

    chosen, reconciler.world.agent_free = fill_slots(
        candidates(), free_slots=free, agent_free=reconciler.world.agent_free
    )
    for candidate in chosen:
        flow = flow_of(by_name[candidate.task])
        run = flow.start(candidate.stage, candidate.agent)
        reconciler.world.in_flight[run] = (candidate.agent, reconciler.batch.name)
