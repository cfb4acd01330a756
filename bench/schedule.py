"""Scheduling benchmark: `decide()` driven by the virtual-time Simulation on random DAGs.

Measures how close DependencyAware scheduling gets to the lower bound of the makespan,
max(critical path, total work / parallelLimit), how busy it keeps the slots, how it compares
with FIFO dispatch among ready tasks (what a plain Kubernetes Job or Argo DAG does), and how
long one `decide()` call takes on a 10,000-task batch. See bench/README.md.

    .venv/bin/python bench/schedule.py [--seeds N] [--trials N] [--quick]

Progress and a per-configuration table go to stdout; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from agentfleet.core.actions import Action, RecordEvent, SetStatus, StartRun
from agentfleet.core.naming import run_name, task_name
from agentfleet.core.planning import tasks_from_tickets
from agentfleet.core.reconcile import decide
from agentfleet.core.snapshot import Snapshot
from agentfleet.models import AgentConfig, AgentTask, Project, TicketBatch, Workflow
from agentfleet.models.batch import TaskCounts, TicketEntry
from agentfleet.models.run import ObservedRun, RunPhase
from agentfleet.simulate import EPOCH, Simulation

BATCH = "bench"
STAGE = "dev"
AGENT = "dev-agent"
SHAPES = ("shallow", "deep")
PARALLEL_LIMITS = (4, 16, 64)


def out(line: str = "") -> None:
    print(line, flush=True)


# --- random DAGs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Dag:
    """Tickets in listing order, each with its dependencies, estimate and actual duration."""

    shape: str
    seed: int
    ids: tuple[str, ...]  # listing (ticket) order, shuffled
    deps: dict[str, tuple[str, ...]]
    complexity: dict[str, int]
    duration: dict[str, float]  # what a run of the ticket actually takes
    layers: int  # the longest chain, in tasks

    def tickets(self) -> list[dict[str, Any]]:
        return [
            {
                "id": i,
                "rawDescription": f"ticket {i}",
                "estimatedComplexity": self.complexity[i],
                "dependencies": list(self.deps[i]),
            }
            for i in self.ids
        ]


def layer_sizes(shape: str, n: int) -> list[int]:
    if shape == "shallow":  # 5 wide layers
        return [n // 5 + (1 if k < n % 5 else 0) for k in range(5)]
    if shape == "wide10k":  # the decide() timing batch: 50 layers of n/50
        return [n // 50] * 50
    raise ValueError(shape)


EPICS = 8
EPIC_SHARE = 0.5


def make_dag(shape: str, n: int, seed: int) -> Dag:
    """A random DAG; tickets are listed in a random order, as people file them.

    shallow: 5 layers; a task depends on 0-2 tasks of any earlier layer.
    deep: a backlog with long dependency chains beside short work. Half the tasks form 8
        epics, chains in which each task depends on the one before it (and, one time in
        five, on an earlier task of another epic); the other half are side tasks that
        depend on nothing or on one random earlier task. The chains are the critical path;
        a scheduler that does not look at it leaves them waiting behind side work.
    wide10k: 50 layers; a task depends on 1-3 tasks of the previous 3 layers.
    Complexity (the estimate decide() sees) is 1..10; the actual duration of a run is
    complexity * uniform(0.8, 1.2).
    """
    rng = random.Random(f"dag-{shape}-{n}-{seed}")
    width = len(str(n - 1))
    names = [f"t{k:0{width}d}" for k in range(n)]
    deps: dict[str, tuple[str, ...]] = {}
    if shape == "deep":
        chain_len = int(n * EPIC_SHARE) // EPICS
        # Named position by position across epics, so that name order is a topological order.
        epics = [[names[k * EPICS + e] for k in range(chain_len)] for e in range(EPICS)]
        for e, chain in enumerate(epics):
            for k, ident in enumerate(chain):
                picked = [chain[k - 1]] if k else []
                if k > 1 and rng.random() < 0.2:
                    other = epics[rng.choice([x for x in range(EPICS) if x != e])]
                    picked.append(other[rng.randrange(k - 1)])
                deps[ident] = tuple(sorted(picked))
        placed = names[: chain_len * EPICS]
        for ident in names[len(placed) :]:
            deps[ident] = (rng.choice(placed),) if rng.random() < 0.5 else ()
            placed.append(ident)
    else:
        sizes = layer_sizes(shape, n)
        layers: list[list[str]] = []
        count = 0
        for index, size in enumerate(sizes):
            if shape == "shallow":
                pool = [t for previous in layers for t in previous]
                lo, hi = 0, 2
            else:
                pool = [t for previous in layers[-3:] for t in previous]
                lo, hi = 1, 3
            layer = names[count : count + size]
            count += size
            for ident in layer:
                k = rng.randint(lo, hi) if index else 0
                deps[ident] = tuple(sorted(rng.sample(pool, min(k, len(pool)))))
            layers.append(layer)
    complexity = {t: rng.randint(1, 10) for t in names}
    durations = random.Random(f"durations-{shape}-{n}-{seed}")
    duration = {t: complexity[t] * durations.uniform(0.8, 1.2) for t in names}
    depth: dict[str, int] = {}
    for ident in names:
        depth[ident] = 1 + max((depth[d] for d in deps[ident]), default=0)
    listing = list(names)
    rng.shuffle(listing)
    return Dag(shape, seed, tuple(listing), deps, complexity, duration, max(depth.values()))


def topo(dag: Dag) -> list[str]:
    """Generation order: every dependency comes before its dependents."""
    return sorted(dag.ids)


def critical_path(dag: Dag, weight: dict[str, float]) -> float:
    finish: dict[str, float] = {}
    for t in topo(dag):
        finish[t] = weight[t] + max((finish[d] for d in dag.deps[t]), default=0.0)
    return max(finish.values())


def resources(tickets: list[dict[str, Any]], parallel_limit: int, batch: str = BATCH) -> list[Any]:
    """One project, one agent without a cap, a one-stage workflow, a DependencyAware batch."""
    return [
        Project.model_validate(
            {"metadata": {"name": "proj"}, "spec": {"repository": {"url": "https://x/r.git"}}}
        ),
        AgentConfig.model_validate(
            {
                "metadata": {"name": AGENT},
                "spec": {
                    "agentType": "Development",
                    "baseExecutor": {"type": "command", "command": ["true"]},
                },
            }
        ),
        Workflow.model_validate(
            {
                "metadata": {"name": "flow"},
                "spec": {"stages": [{"name": STAGE, "agentType": "Development"}]},
            }
        ),
        TicketBatch.model_validate(
            {
                "metadata": {"name": batch},
                "spec": {
                    "projectRef": {"name": "proj"},
                    "workflowRef": {"name": "flow"},
                    "strategy": "DependencyAware",
                    "parallelLimit": parallel_limit,
                    "tickets": tickets,
                },
            }
        ),
    ]


# --- the two schedulers --------------------------------------------------------------------


@dataclass
class Schedule:
    start: dict[str, float]
    finish: dict[str, float]

    @property
    def makespan(self) -> float:
        return max(self.finish.values())


@dataclass
class DecideRun:
    schedule: Schedule
    busy: float
    decide_calls: int
    seconds: float
    problems: list[str]


def simulate_decide(dag: Dag, parallel_limit: int) -> DecideRun:
    """The real decide(), applied by agentfleet.simulate.Simulation in virtual time."""
    by_task = {task_name(BATCH, t): t for t in dag.ids}

    def duration(request: Any) -> float:
        return dag.duration[by_task[request.task]]

    sim = Simulation.from_resources(resources(dag.tickets(), parallel_limit), duration=duration)
    began = time.perf_counter()
    sim.run()
    seconds = time.perf_counter() - began

    problems: list[str] = []
    phase = sim.batches[BATCH].status.phase if sim.batches[BATCH].status else None
    if phase != "Succeeded":
        problems.append(f"batch ended {phase}")
    start: dict[str, float] = {}
    finish: dict[str, float] = {}
    busy = 0.0
    for run in sim.runs.values():
        ticket = by_task.get(run.request.task or "")
        if ticket is None:
            problems.append(f"run {run.request.name} of no benchmark task")
            continue
        if ticket in start:
            problems.append(f"task {ticket} ran more than once")
        if run.observed.phase != RunPhase.SUCCEEDED:
            problems.append(f"run {run.request.name} ended {run.observed.phase}")
        start[ticket], finish[ticket] = run.started, run.finishes
        busy += run.finishes - run.started
    never = [t for t in dag.ids if t not in start]
    if never:
        problems.append(f"{len(never)} tasks never started, e.g. {never[:3]}")
        for t in never:  # keep the metrics computable; the problem is reported
            start[t] = finish[t] = float("nan")
    problems += check_schedule(dag, Schedule(start, finish), parallel_limit)
    return DecideRun(Schedule(start, finish), busy, sim.decide_calls, seconds, problems)


def simulate_fifo(dag: Dag, parallel_limit: int) -> Schedule:
    """FIFO list scheduling: ready tasks start in the order they became ready (ties: ticket
    order) whenever one of the `parallel_limit` slots is free. No look at the graph beyond
    "are my dependencies done" - a Kubernetes Job queue or an Argo DAG with parallelism."""
    position = {t: k for k, t in enumerate(dag.ids)}
    dependents: dict[str, list[str]] = {t: [] for t in dag.ids}
    waiting_on = {t: len(dag.deps[t]) for t in dag.ids}
    for t in dag.ids:
        for d in dag.deps[t]:
            dependents[d].append(t)
    ready = [t for t in dag.ids if waiting_on[t] == 0]  # ticket order
    head = 0
    running: list[tuple[float, int, str]] = []
    start: dict[str, float] = {}
    finish: dict[str, float] = {}
    clock = 0.0
    while head < len(ready) or running:
        while head < len(ready) and len(running) < parallel_limit:
            t = ready[head]
            head += 1
            start[t] = clock
            heapq.heappush(running, (clock + dag.duration[t], position[t], t))
        clock = running[0][0]
        done = []
        while running and running[0][0] <= clock:
            done.append(heapq.heappop(running)[2])
        now_ready = []
        for t in done:
            finish[t] = clock
            for child in dependents[t]:
                waiting_on[child] -= 1
                if waiting_on[child] == 0:
                    now_ready.append(child)
        ready.extend(sorted(now_ready, key=position.__getitem__))
    return Schedule(start, finish)


def check_schedule(dag: Dag, schedule: Schedule, parallel_limit: int) -> list[str]:
    problems = []
    late = [
        t
        for t in dag.ids
        if any(schedule.start[t] < schedule.finish[d] - 1e-9 for d in dag.deps[t])
    ]
    if late:
        problems.append(f"{len(late)} tasks started before a dependency finished")
    events = sorted(
        [(schedule.finish[t], -1) for t in dag.ids] + [(schedule.start[t], 1) for t in dag.ids]
    )
    level = peak = 0
    for _when, change in events:
        level += change
        peak = max(peak, level)
    if peak > parallel_limit:
        problems.append(f"{peak} runs at once, over parallelLimit {parallel_limit}")
    return problems


def idle_while_ready(dag: Dag, schedule: Schedule, parallel_limit: int) -> float:
    """Slot-time left idle while some task was ready (all dependencies done) but not started,
    as a fraction of parallelLimit * makespan. 0 for any work-conserving scheduler."""
    events: dict[float, list[int]] = {}  # time -> [change in running, change in waiting]
    for t in dag.ids:
        ready_at = max((schedule.finish[d] for d in dag.deps[t]), default=0.0)
        for when, run, wait in (
            (ready_at, 0, 1),
            (schedule.start[t], 1, -1),
            (schedule.finish[t], -1, 0),
        ):
            slot = events.setdefault(when, [0, 0])
            slot[0] += run
            slot[1] += wait
    running = waiting = 0
    lost = 0.0
    times = sorted(events)
    for when, after in zip(times, [*times[1:], times[-1]], strict=True):
        running += events[when][0]
        waiting += events[when][1]
        lost += min(parallel_limit - running, waiting) * (after - when)
    return lost / (parallel_limit * schedule.makespan)


# --- one configuration ---------------------------------------------------------------------


@dataclass
class Row:
    shape: str
    parallel_limit: int
    seed: int
    layers: int
    critical_path: float
    work: float
    bound: float
    makespan: float
    ratio: float
    utilization: float
    idle_while_ready: float
    fifo_makespan: float
    fifo_ratio: float
    fifo_utilization: float
    decide_calls: int
    seconds: float
    problems: list[str]

    @property
    def wide_enough(self) -> bool:
        """The work bound dominates: total work / P >= critical path."""
        return self.work / self.parallel_limit >= self.critical_path


def measure(dag: Dag, parallel_limit: int) -> Row:
    cp = critical_path(dag, dag.duration)
    work = sum(dag.duration.values())
    bound = max(cp, work / parallel_limit)
    run = simulate_decide(dag, parallel_limit)
    makespan = run.schedule.makespan
    fifo = simulate_fifo(dag, parallel_limit)
    fifo_problems = check_schedule(dag, fifo, parallel_limit)
    if fifo_problems:
        raise AssertionError(f"the FIFO baseline is broken: {fifo_problems}")
    return Row(
        shape=dag.shape,
        parallel_limit=parallel_limit,
        seed=dag.seed,
        layers=dag.layers,
        critical_path=cp,
        work=work,
        bound=bound,
        makespan=makespan,
        ratio=makespan / bound,
        utilization=run.busy / (parallel_limit * makespan),
        idle_while_ready=idle_while_ready(dag, run.schedule, parallel_limit),
        fifo_makespan=fifo.makespan,
        fifo_ratio=fifo.makespan / bound,
        fifo_utilization=work / (parallel_limit * fifo.makespan),
        decide_calls=run.decide_calls,
        seconds=run.seconds,
        problems=run.problems,
    )


# --- decide() on a 10,000-task batch -------------------------------------------------------


@dataclass
class Templates:
    """Statuses and runs exactly as decide() and the Simulation write them, from a 2-task run."""

    pending: Any
    running: Any
    succeeded: Any
    run_running: ObservedRun
    run_succeeded: ObservedRun
    batch_status: Any


def templates() -> Templates:
    tickets = [
        {"id": "a", "rawDescription": "a", "estimatedComplexity": 3},
        {"id": "b", "rawDescription": "b", "estimatedComplexity": 3, "dependencies": ["a"]},
    ]
    sim = Simulation.from_resources(resources(tickets, 1, "tmpl"), duration=lambda _r: 60.0)
    sim.settle()
    a, b = task_name("tmpl", "a"), task_name("tmpl", "b")
    pending = sim.tasks[b].status
    sim.clock = 60.0
    run_a = sim.runs[run_name(a, STAGE, 1)]
    sim._end(run_a, ok=True, reason="Succeeded")
    sim.settle()
    run_b = sim.runs[run_name(b, STAGE, 1)]
    assert pending is not None
    assert pending.phase == "Pending"
    return Templates(
        pending=pending,
        running=sim.tasks[b].status,
        succeeded=sim.tasks[a].status,
        run_running=run_b.observed,
        run_succeeded=run_a.observed,
        batch_status=sim.batches["tmpl"].status,
    )


def _attempt_status(template: Any, task: AgentTask, run: str) -> Any:
    stage = template.stages[0]
    attempt = stage.attempts[0].model_copy(update={"run_name": run})
    return template.model_copy(
        update={
            "branch": task.spec.branch,
            "stages": [stage.model_copy(update={"attempts": [attempt]})],
        }
    )


def _run(template: ObservedRun, task: str, **update: Any) -> ObservedRun:
    return template.model_copy(
        update={"name": run_name(task, STAGE, 1), "task": task, "batch": BATCH, **update}
    )


@dataclass
class MidRun:
    resources: list[Any]
    tasks: list[AgentTask]
    runs: list[ObservedRun]
    running: list[str]  # task names with a running run, in the order trials finish them
    done_run: ObservedRun  # template of a run that just finished
    now: Any

    def snapshot(self, finished: str | None = None) -> Snapshot:
        runs = self.runs
        if finished is not None:
            name = run_name(finished, STAGE, 1)
            runs = [
                _run(self.done_run, finished, start_time=r.start_time, finish_time=self.now)
                if r.name == name
                else r
                for r in runs
            ]
        by_kind: dict[str, dict[str, Any]] = {}
        for resource in self.resources:
            by_kind.setdefault(resource.kind, {})[resource.name] = resource
        return Snapshot(
            now=self.now,
            batches=list(by_kind["TicketBatch"].values()),
            tasks=self.tasks,
            workflows=by_kind["Workflow"],
            agents=by_kind["AgentConfig"],
            projects=by_kind["Project"],
            runs=runs,
        )


def mid_run_batch(n: int, parallel_limit: int, done_fraction: float = 0.4) -> MidRun:
    """A batch of `n` tasks caught mid-run: a dependency-closed prefix (in topological order)
    Succeeded, `parallel_limit` ready tasks Running, the rest Pending."""
    tmpl = templates()
    dag = make_dag("wide10k", n, 0)
    res = resources(dag.tickets(), parallel_limit)
    batch: TicketBatch = res[-1]
    planned = {t.spec.ticket_id: t for t in tasks_from_tickets(batch)}
    order = topo(dag)
    done = set(order[: int(n * done_fraction)])
    estimate = {t: float(c) for t, c in dag.complexity.items()}
    tail: dict[str, float] = {}
    dependents: dict[str, list[str]] = {t: [] for t in order}
    for t in order:
        for d in dag.deps[t]:
            dependents[d].append(t)
    for t in reversed(order):
        tail[t] = estimate[t] + max((tail[c] for c in dependents[t]), default=0.0)
    ready = [t for t in order if t not in done and all(d in done for d in dag.deps[t])]
    if len(ready) <= parallel_limit:
        raise AssertionError(f"only {len(ready)} ready tasks for {parallel_limit} slots")
    position = {t: k for k, t in enumerate(dag.ids)}
    # the ones decide() itself would have started: longest remaining path first
    running = sorted(ready, key=lambda t: (-tail[t], position[t]))[:parallel_limit]
    running_set = set(running)

    now = EPOCH + timedelta(hours=6)
    tasks: list[AgentTask] = []
    runs: list[ObservedRun] = []
    phases: dict[str, str] = {}
    for ticket in dag.ids:
        task = planned[ticket]
        name = task.name
        if ticket in done:
            status = _attempt_status(tmpl.succeeded, task, run_name(name, STAGE, 1))
            runs.append(_run(tmpl.run_succeeded, name))
            phases[ticket] = "Succeeded"
        elif ticket in running_set:
            status = _attempt_status(tmpl.running, task, run_name(name, STAGE, 1))
            runs.append(_run(tmpl.run_running, name))
            phases[ticket] = "Running"
        else:
            status = tmpl.pending.model_copy(update={"branch": task.spec.branch})
            phases[ticket] = "Pending"
        meta = task.metadata.model_copy(update={"creation_timestamp": EPOCH})
        tasks.append(task.model_copy(update={"metadata": meta, "status": status}))
    counts = TaskCounts(
        total=n, succeeded=len(done), running=len(running), pending=n - len(done) - len(running)
    )
    progress = f"{len(done)}/{n}"
    batch_status = tmpl.batch_status.model_copy(
        update={
            "counts": counts,
            "progress": progress,
            "tickets": [TicketEntry(id=t, task=planned[t].name, phase=phases[t]) for t in dag.ids],
            "conditions": [
                c.model_copy(update={"message": f"{progress} tasks done"})
                for c in tmpl.batch_status.conditions
            ],
        }
    )
    res[-1] = batch.model_copy(update={"status": batch_status})
    return MidRun(res, tasks, runs, [task_name(BATCH, t) for t in running], tmpl.run_succeeded, now)


def _not_events(actions: Sequence[Action]) -> list[Action]:
    return [a for a in actions if not isinstance(a, RecordEvent)]


def _describe(actions: Sequence[Action]) -> list[str]:
    described = []
    for a in _not_events(actions):
        if isinstance(a, SetStatus):
            described.append(f"SetStatus {a.kind} {a.name} {a.status.phase}")
        elif isinstance(a, StartRun):
            described.append(f"StartRun {a.run.name}")
        else:
            described.append(type(a).__name__)
    return described


def timed(call: Callable[[], list[Action]]) -> tuple[float, list[Action]]:
    gc.collect()
    began = time.perf_counter()
    actions = call()
    return (time.perf_counter() - began) * 1000, actions


def bench_decide(n: int, parallel_limit: int, trials: int) -> dict[str, Any]:
    out(f"decide(): building a {n}-task mid-run batch (parallelLimit {parallel_limit}) ...")
    began = time.perf_counter()
    mid = mid_run_batch(n, parallel_limit)
    snapshots = [mid.snapshot(finished=t) for t in mid.running[: trials + 1]]
    base = mid.snapshot()
    out(f"  built in {time.perf_counter() - began:.1f}s; {len(mid.runs)} runs in the snapshot")

    problems: list[str] = []

    def check_trial(finished: str, actions: list[Action]) -> None:
        sets = {(a.kind, a.name): a for a in actions if isinstance(a, SetStatus)}
        starts = [a.run for a in actions if isinstance(a, StartRun)]
        mine = sets.get(("AgentTask", finished))
        if mine is None or mine.status.phase != "Succeeded":
            problems.append(f"no SetStatus Succeeded for {finished}: {_describe(actions)}")
        if len(starts) != 1 or starts[0].task in mid.running:
            problems.append(f"expected one StartRun of a new task: {_describe(actions)}")
        elif ("AgentTask", starts[0].task) not in sets:
            problems.append(f"no SetStatus for the started task {starts[0].task}")

    first_ms, first = timed(lambda: decide(snapshots[0]))
    check_trial(mid.running[0], first)
    out(f"  first call (cold): {first_ms:.1f} ms -> {_describe(first)}")
    base_ms, base_actions = timed(lambda: decide(base))
    leftover = _describe(base_actions)
    out(f"  unchanged snapshot: {base_ms:.1f} ms -> {leftover or 'no actions (fixpoint)'}")
    if leftover:
        problems.append(f"decide() on the unchanged snapshot is not a fixpoint: {leftover}")
    times = []
    for index, snap in enumerate(snapshots[1:], start=1):
        ms, actions = timed(lambda snap=snap: decide(snap))
        check_trial(mid.running[index], actions)
        times.append(ms)
    out(
        f"  {len(times)} trials, a different run finished each: "
        f"median {statistics.median(times):.1f} ms, min {min(times):.1f}, max {max(times):.1f}"
    )
    for p in problems[:5]:
        out(f"  PROBLEM: {p}")
    return {
        "decide_batch_tasks": n,
        "decide_ms_10k": round(statistics.median(times), 2),
        "decide_ms_10k_first_call": round(first_ms, 2),
        "decide_ms_10k_unchanged": round(base_ms, 2),
        "decide_ms_10k_max": round(max(times), 2),
        "decide_trials": len(times),
        "decide_problems": len(problems),
    }


# --- the whole benchmark -------------------------------------------------------------------


def median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def summarise(rows: Sequence[Row]) -> dict[str, Any]:
    wide = [r for r in rows if r.wide_enough]
    summary: dict[str, Any] = {
        "makespan_ratio_median": median([r.ratio for r in rows]),
        "makespan_ratio_max": round(max(r.ratio for r in rows), 4),
        "fifo_makespan_ratio_median": median([r.fifo_ratio for r in rows]),
        "slot_utilization_median": median([r.utilization for r in wide]),
        "slot_utilization_median_all": median([r.utilization for r in rows]),
        "wide_enough_runs": len(wide),
        "runs": len(rows),
        "idle_while_ready_max": round(max(r.idle_while_ready for r in rows), 4),
        "problems": sum(len(r.problems) for r in rows),
        "decide_calls_median": median([r.decide_calls for r in rows]),
        "sim_seconds_median": median([r.seconds for r in rows]),
        "sim_seconds_max": round(max(r.seconds for r in rows), 1),
    }
    for shape in SHAPES:
        mine = [r for r in rows if r.shape == shape]
        if not mine:
            continue
        summary[f"{shape}_makespan_ratio_median"] = median([r.ratio for r in mine])
        summary[f"{shape}_fifo_makespan_ratio_median"] = median([r.fifo_ratio for r in mine])
        summary[f"{shape}_slot_utilization_median"] = median([r.utilization for r in mine])
        summary[f"{shape}_makespan_ratio_max"] = round(max(r.ratio for r in mine), 4)
        summary[f"{shape}_fifo_makespan_ratio_max"] = round(max(r.fifo_ratio for r in mine), 4)
    by_config: dict[str, dict[str, float | None]] = {}
    for shape in SHAPES:
        for p in sorted({r.parallel_limit for r in rows}):
            mine = [r for r in rows if r.shape == shape and r.parallel_limit == p]
            if mine:
                by_config[f"{shape}/P{p}"] = {
                    "ratio": median([r.ratio for r in mine]),
                    "fifo_ratio": median([r.fifo_ratio for r in mine]),
                    "util": median([r.utilization for r in mine]),
                    "wide": sum(r.wide_enough for r in mine),
                }
    summary["by_config"] = by_config
    return summary


HEADER = (
    f"{'shape':8} {'P':>3} {'seed':>4} {'layers':>6} {'crit':>7} {'work/P':>7} {'makespan':>8} "
    f"{'ratio':>6} {'util':>5} {'idle':>5} {'fifo':>6} {'fifoU':>5} {'wide':>4} {'calls':>5} "
    f"{'sec':>5}"
)


def row_line(r: Row) -> str:
    return (
        f"{r.shape:8} {r.parallel_limit:3d} {r.seed:4d} {r.layers:6d} {r.critical_path:7.1f} "
        f"{r.work / r.parallel_limit:7.1f} {r.makespan:8.1f} {r.ratio:6.3f} {r.utilization:5.3f} "
        f"{r.idle_while_ready:5.3f} {r.fifo_ratio:6.3f} {r.fifo_utilization:5.3f} "
        f"{'yes' if r.wide_enough else 'no':>4} {r.decide_calls:5d} {r.seconds:5.1f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="random DAGs per shape (default 3)")
    parser.add_argument("--trials", type=int, default=15, help="timed decide() calls (default 15)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 200-task DAGs, a 2,000-task decide() batch, 1 seed, 5 trials",
    )
    args = parser.parse_args(argv)
    tasks, decide_tasks, seeds, trials = 1000, 10_000, args.seeds, args.trials
    if args.quick:
        tasks, decide_tasks, seeds, trials = 200, 2000, 1, 5
    began = time.perf_counter()
    out(f"python {platform.python_version()} on {platform.machine()}, {time.strftime('%Y-%m-%d')}")

    # decide() timing first, so that its first call is the first one on a 10k batch
    result: dict[str, Any] = bench_decide(decide_tasks, 64, trials)

    out(
        f"\nsimulations: {tasks} tasks, shapes {SHAPES}, parallelLimit {PARALLEL_LIMITS}, "
        f"seeds 0..{seeds - 1}"
    )
    out(HEADER)
    rows: list[Row] = []
    for shape in SHAPES:
        for seed in range(seeds):
            dag = make_dag(shape, tasks, seed)
            for p in PARALLEL_LIMITS:
                row = measure(dag, p)
                rows.append(row)
                out(row_line(row))
                for problem in row.problems[:5]:
                    out(f"    PROBLEM: {problem}")
    result.update(summarise(rows))
    result.update(
        {
            "tasks": tasks,
            "seeds": seeds,
            "quick": args.quick,
            "elapsed_seconds": round(time.perf_counter() - began, 1),
        }
    )
    out(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
