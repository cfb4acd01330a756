"""A virtual-time driver: the real `decide()` with runs that take simulated durations.

It shows a batch's schedule before any agent runs (`agentfleet simulate`), and it is what the
scheduling benchmark measures. Like the real drivers it only observes and applies.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .core.actions import (
    Action,
    CancelRun,
    ClearAnnotation,
    CreateTask,
    RecordEvent,
    RunRequest,
    SetStatus,
    StartRun,
)
from .core.reconcile import decide
from .core.snapshot import Snapshot
from .models import AgentConfig, AgentTask, Project, TicketBatch, Workflow
from .models.loader import load_manifests
from .models.meta import Resource
from .models.run import (
    AttemptPhase,
    ObservedRun,
    RefinedTicket,
    RunKind,
    RunPhase,
    RunResult,
)

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
TIMELINE_WIDTH = 24

Duration = Callable[[RunRequest], float]
Outcome = Callable[[RunRequest], bool]


@dataclass
class SimRun:
    request: RunRequest
    started: float
    finishes: float
    succeeds: bool
    observed: ObservedRun


@dataclass
class Simulation:
    """Resources in memory, a virtual clock in seconds, and runs that end when told to."""

    projects: dict[str, Project]
    agents: dict[str, AgentConfig]
    workflows: dict[str, Workflow]
    batches: dict[str, TicketBatch]
    duration: Duration
    outcome: Outcome = lambda _run: True
    tasks: dict[str, AgentTask] = field(default_factory=dict)
    runs: dict[str, SimRun] = field(default_factory=dict)
    events: list[RecordEvent] = field(default_factory=list)
    clock: float = 0.0
    decide_calls: int = 0
    busy_time: float = 0.0

    @classmethod
    def from_resources(
        cls,
        resources: Iterable[Resource[Any, Any]],
        duration: Duration,
        outcome: Outcome | None = None,
    ) -> Simulation:
        by_kind: dict[str, dict[str, Any]] = {}
        for resource in resources:
            by_kind.setdefault(resource.kind, {})[resource.name] = resource
        sim = cls(
            projects=by_kind.get("Project", {}),
            agents=by_kind.get("AgentConfig", {}),
            workflows=by_kind.get("Workflow", {}),
            batches=by_kind.get("TicketBatch", {}),
            duration=duration,
        )
        if outcome is not None:
            sim.outcome = outcome
        return sim

    @property
    def now(self) -> datetime:
        return EPOCH + timedelta(seconds=self.clock)

    def snapshot(self) -> Snapshot:
        return Snapshot(
            now=self.now,
            batches=list(self.batches.values()),
            tasks=list(self.tasks.values()),
            workflows=self.workflows,
            agents=self.agents,
            projects=self.projects,
            runs=[r.observed for r in self.runs.values()],
        )

    def step(self) -> list[Action]:
        actions = decide(self.snapshot())
        self.decide_calls += 1
        for action in actions:
            self.apply(action)
        return actions

    def apply(self, action: Action) -> None:
        match action:
            case CreateTask(task=task):
                if task.name not in self.tasks:
                    meta = task.metadata.model_copy(update={"creation_timestamp": self.now})
                    self.tasks[task.name] = task.model_copy(update={"metadata": meta})
            case StartRun(run=request):
                if request.name not in self.runs:
                    self._start(request)
            case CancelRun(name=name, reason=reason):
                run = self.runs.get(name)
                if run is not None and not run.observed.phase.finished:
                    self._end(run, ok=False, reason=reason)
            case SetStatus(kind=kind, name=name, status=status):
                store: dict[str, Any] = {
                    "TicketBatch": self.batches,
                    "AgentTask": self.tasks,
                    "AgentConfig": self.agents,
                    "Workflow": self.workflows,
                    "Project": self.projects,
                }[kind]
                if name in store:
                    store[name] = store[name].model_copy(update={"status": status})
            case RecordEvent():
                self.events.append(action)
            case ClearAnnotation(kind=kind, name=name, key=key):
                store = self.batches if kind == "TicketBatch" else self.tasks
                if name in store:
                    obj = store[name]
                    annotations = {k: v for k, v in obj.metadata.annotations.items() if k != key}
                    meta = obj.metadata.model_copy(update={"annotations": annotations})
                    store[name] = obj.model_copy(update={"metadata": meta})

    def _start(self, request: RunRequest) -> None:
        took = max(self.duration(request), 0.0)
        self.runs[request.name] = SimRun(
            request=request,
            started=self.clock,
            finishes=self.clock + took,
            succeeds=self.outcome(request),
            observed=ObservedRun(
                name=request.name,
                kind=request.kind,
                batch=request.batch,
                task=request.task,
                stage=request.stage,
                attempt=request.attempt,
                agent=request.agent,
                phase=RunPhase.RUNNING,
                start_time=self.now,
            ),
        )

    def _end(self, run: SimRun, ok: bool, reason: str) -> None:
        refined = None
        if run.request.kind == RunKind.REFINEMENT and ok:
            batch = self.batches[run.request.batch or ""]
            wanted = set(run.request.tickets) or {t.id for t in batch.spec.tickets}
            refined = [
                RefinedTicket(
                    id=t.id,
                    title=t.raw_description.splitlines()[0][:80],
                    description=t.raw_description,
                    complexity=t.estimated_complexity,
                    priority=t.priority,
                    dependencies=list(t.dependencies),
                )
                for t in batch.spec.tickets
                if t.id in wanted
            ]
        self.busy_time += self.clock - run.started
        run.observed = run.observed.model_copy(
            update={
                "phase": RunPhase.SUCCEEDED if ok else RunPhase.FAILED,
                "finish_time": self.now,
                "exit_code": 0 if ok else 1,
                "reason": reason,
                "result": RunResult(
                    outcome=AttemptPhase.SUCCEEDED if ok else AttemptPhase.FAILED,
                    reason=reason,
                    exit_code=0 if ok else 1,
                    duration_seconds=self.clock - run.started,
                    refined_tickets=refined,
                ),
            }
        )

    def settle(self, limit: int = 50) -> None:
        """Decide and apply until the engine has nothing more to say at this instant."""
        for _ in range(limit):
            actions = self.step()
            if not any(not isinstance(a, RecordEvent) for a in actions):
                return
        raise RuntimeError(f"decide() did not settle after {limit} calls at t={self.clock}")

    def finished(self) -> bool:
        return all(
            b.status is not None and b.status.phase in ("Succeeded", "Failed")
            for b in self.batches.values()
        )

    def run(self, max_steps: int = 1_000_000) -> None:
        """Until every batch is finished, or nothing is running and nothing can start."""
        for _ in range(max_steps):
            self.settle()
            if self.finished():
                return
            running = [r for r in self.runs.values() if not r.observed.phase.finished]
            if not running:
                return
            next_end = min(r.finishes for r in running)
            self.clock = max(self.clock, next_end)
            for run in running:
                if run.finishes <= self.clock:
                    ok = run.succeeds
                    self._end(run, ok=ok, reason="Succeeded" if ok else "Error")


@dataclass(frozen=True)
class TaskTimeline:
    task: str
    ticket: str
    phase: str
    starts: float | None
    ends: float | None


@dataclass(frozen=True)
class SimulationReport:
    batch: str
    phase: str
    reason: str
    message: str
    strategy: str
    parallel_limit: int
    makespan: float
    critical_path: float
    total_work: float
    timelines: tuple[TaskTimeline, ...]


def report(sim: Simulation) -> list[SimulationReport]:
    from .core.dag import critical_path_lengths

    reports = []
    for batch in sim.batches.values():
        summary = batch.status.condition("Succeeded") if batch.status else None
        tasks = [
            t
            for t in sim.tasks.values()
            if t.spec.batch_ref and t.spec.batch_ref.name == batch.name
        ]
        runs = [r for r in sim.runs.values() if r.request.batch == batch.name]
        lines = []
        for task in sorted(tasks, key=lambda t: t.spec.order):
            mine = [r for r in runs if r.request.task == task.name]
            lines.append(
                TaskTimeline(
                    task=task.name,
                    ticket=task.spec.ticket_id or task.name,
                    phase=str(task.status.phase if task.status else "Pending"),
                    starts=min((r.started for r in mine), default=None),
                    ends=max((r.finishes for r in mine), default=None),
                )
            )
        graph = {t.name: list(t.spec.dependencies) for t in tasks}
        per_task = {
            t.name: sum(r.finishes - r.started for r in runs if r.request.task == t.name)
            for t in tasks
        }
        critical = critical_path_lengths(graph, per_task) if graph else {}
        reports.append(
            SimulationReport(
                batch=batch.name,
                phase=str(batch.status.phase if batch.status else "Pending"),
                reason=summary.reason if summary else "",
                message=summary.message if summary else "",
                strategy=str(batch.spec.strategy),
                parallel_limit=batch.spec.parallel_limit,
                makespan=max((r.finishes for r in runs), default=0.0),
                critical_path=max(critical.values(), default=0.0),
                total_work=sum(r.finishes - r.started for r in runs),
                timelines=tuple(lines),
            )
        )
    return reports


def complexity_durations(sim_tasks: dict[str, AgentTask], seed: int) -> Duration:
    """A run lasts about its task's complexity in minutes, give or take a fifth."""
    rng = random.Random(seed)

    def duration(run: RunRequest) -> float:
        task = sim_tasks.get(run.task or "")
        base = float(task.spec.complexity or 3) if task else 2.0
        return round(base * 60 * rng.uniform(0.8, 1.2), 1)

    return duration


def simulate_manifests(files: Sequence[Path], seed: int = 0) -> list[SimulationReport]:
    loaded = load_manifests(files)
    sim = Simulation.from_resources([item.resource for item in loaded], duration=lambda _r: 60.0)
    sim.duration = complexity_durations(sim.tasks, seed)
    sim.run()
    return report(sim)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:d}:{secs:02d}"


def render_simulation(console: Console, reports: Sequence[SimulationReport]) -> None:
    for rep in reports:
        table = Table(
            title=f"{rep.batch}: {rep.strategy}, parallelLimit {rep.parallel_limit}, simulated time"
        )
        table.add_column("ticket", no_wrap=True)
        for column in ("phase", "start", "end"):
            table.add_column(column, no_wrap=True)
        table.add_column("timeline", no_wrap=True)
        scale = TIMELINE_WIDTH / rep.makespan if rep.makespan else 0
        for line in rep.timelines:
            bar = ""
            if line.starts is not None and line.ends is not None:
                bar = " " * int(line.starts * scale) + "█" * max(
                    1, int((line.ends - line.starts) * scale)
                )
            table.add_row(
                line.ticket,
                line.phase,
                _clock(line.starts),
                _clock(line.ends),
                bar,
            )
        if rep.timelines:
            console.print(table)
        if rep.phase != "Succeeded":
            console.print(f"{rep.batch}: {rep.phase}: {rep.reason}: {rep.message}")
            continue
        bound = max(rep.critical_path, rep.total_work / rep.parallel_limit)
        ratio = rep.makespan / bound if bound else 1.0
        console.print(
            f"{rep.batch}: {rep.phase}; makespan {_clock(rep.makespan)}, critical path "
            f"{_clock(rep.critical_path)}, total work {_clock(rep.total_work)}, "
            f"makespan / lower bound = {ratio:.2f}"
        )
