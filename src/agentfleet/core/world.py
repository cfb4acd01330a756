"""What one `decide()` call knows of the world: indexes over the snapshot, and free slots."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import NamedTuple

from ..agents.registry import AgentRegistry
from ..models.meta import Priority
from ..models.run import Attempt, AttemptPhase, ObservedRun, RunPhase
from ..models.task import ACTION_ANNOTATION, AgentTask, TaskPhase
from .snapshot import Snapshot
from .taskflow import Context

HOLDS_RUNS = frozenset({TaskPhase.RUNNING, TaskPhase.AWAITING_APPROVAL})
FINISHED_RUN = frozenset({RunPhase.SUCCEEDED, RunPhase.FAILED})
PHASES = {p.value: p for p in TaskPhase}


def task_phase(task: AgentTask) -> TaskPhase:
    status = task.status
    return PHASES[status.phase] if status is not None and status.phase else TaskPhase.PENDING


class Row(NamedTuple):
    """What `decide()` reads of a task model, read once per model object."""

    name: str
    task: AgentTask
    batch: str | None
    phase: TaskPhase
    shape: tuple[str, tuple[str, ...], int, Priority, int]
    flagged: bool  # no status yet, or a human's action annotation waits


_memo: dict[str, dict[int, Row]] = {"rows": {}}
"""The rows of the last snapshot `World` saw, by object identity."""


def read_row(task: AgentTask) -> Row:
    """Read what `decide()` needs of a task model.

    `World` remembers rows by object identity from one call to the next: a snapshot's
    objects are never changed in place (drivers replace an object that changed), so the
    same object always reads the same, and reading pydantic models is what a 10,000-task
    call spends most on. The memo holds the objects alive, so an id cannot be reused.
    """
    meta, spec, status = task.metadata, task.spec, task.status
    ref = spec.batch_ref
    annotations = meta.annotations
    return Row(
        meta.name,
        task,
        ref.name if ref is not None else None,
        PHASES[status.phase] if status is not None and status.phase else TaskPhase.PENDING,
        (meta.name, tuple(spec.dependencies), spec.complexity or 1, spec.priority, spec.order),
        status is None or bool(annotations and ACTION_ANNOTATION in annotations),
    )


class World:
    """Indexes over the snapshot, and the agents' free slots as runs are handed out."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.registry = AgentRegistry(snapshot.agents)
        runs_by_task: dict[str, list[ObservedRun]] = defaultdict(list)
        runs_by_name: dict[str, ObservedRun] = {}
        self.live_tasks: set[str] = set()
        self.in_flight: dict[str, tuple[str, str | None]] = {}
        """Every run holding a slot, by name: observed unfinished, or recorded as running."""
        for run in snapshot.runs:
            runs_by_name[run.name] = run
            live = run.phase not in FINISHED_RUN
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
        self.rows_by_batch: dict[str, list[Row]] = defaultdict(list)
        self.task_batch: dict[str, str | None] = {}
        seen: dict[int, Row] = {}
        remembered = _memo["rows"]
        task_batch = self.task_batch
        rows_by_batch = self.rows_by_batch
        for task in snapshot.tasks:
            key = id(task)
            row = remembered.get(key)
            if row is None or row.task is not task:
                row = read_row(task)
            seen[key] = row
            batch = row.batch
            task_batch[row.name] = batch
            if batch is not None:
                rows_by_batch[batch].append(row)
            if row.phase in HOLDS_RUNS and task.status is not None:
                self._recorded_runs([stage.attempts for stage in task.status.stages], batch)
        # Remember this snapshot's objects only: memory stays bounded by one snapshot.
        _memo["rows"] = seen
        for batch_obj in snapshot.batches:
            if batch_obj.status and batch_obj.status.refinement_attempts:
                # Groups refine side by side: every running attempt holds a run, not the last.
                self._recorded_runs(
                    [[a] for a in batch_obj.status.refinement_attempts],
                    batch_obj.metadata.name,
                )
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
            if observed is None or observed.phase not in FINISHED_RUN:
                self.in_flight[last.run_name] = (last.agent, batch)

    def batch_in_flight(self, batch: str) -> int:
        return sum(1 for _agent, b in self.in_flight.values() if b == batch)
