"""Properties of whole runs over random batches: limits, dependencies, strategies, termination.

Each example is a random DAG of tickets (a ticket depends only on tickets before it, so the
graph is acyclic), random complexities and priorities, a random execution strategy, parallel
limit, per-agent caps, failure strategy and retry budget, and run outcomes drawn from a seed
per run name, so that the expected end of every task can be worked out independently of the
engine. Everything runs in the virtual time of `Simulation`, checked after every decide().
"""

from __future__ import annotations

import itertools
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agentfleet.core.actions import Action, RunRequest
from agentfleet.core.naming import run_name, task_name
from agentfleet.core.reconcile import decide
from agentfleet.core.refinement import refinement_groups
from agentfleet.models.run import RunKind, RunPhase
from agentfleet.simulate import Simulation

from ..models import manifests as m
from .fleet import build, seconds

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
STRATEGIES = ("Sequential", "ParallelBatch", "DependencyAware")
FAILURE_STRATEGIES = ("AbortAll", "ContinueOthers", "RetryWithDifferentAgent", "EscalateToHuman")
PRIORITIES = ("low", "medium", "high", "critical")
DEV_AGENTS = ("dev-a", "dev-b")
QA_AGENTS = ("qa",)


# --- scenarios -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchPlan:
    name: str
    deps: tuple[tuple[int, ...], ...]
    complexities: tuple[int | None, ...]
    priorities: tuple[str, ...]
    strategy: str
    parallel_limit: int
    batch_size: int | None
    refinement: bool
    development_agent: str | None = None

    def ticket_id(self, index: int) -> str:
        return f"T-{index}"

    def task(self, index: int) -> str:
        return task_name(self.name, self.ticket_id(index))

    def graph(self) -> dict[str, list[str]]:
        return {self.task(i): [self.task(d) for d in ds] for i, ds in enumerate(self.deps)}

    def manifest(self) -> dict[str, Any]:
        tickets = []
        for i, ds in enumerate(self.deps):
            extra: dict[str, Any] = {"priority": self.priorities[i]}
            if self.complexities[i] is not None:
                extra["estimatedComplexity"] = self.complexities[i]
            tickets.append(m.ticket(self.ticket_id(i), *(self.ticket_id(d) for d in ds), **extra))
        spec: dict[str, Any] = {
            "workflowRef": {"name": "flow"},
            "strategy": self.strategy,
            "parallelLimit": self.parallel_limit,
        }
        if self.batch_size is not None:
            spec["batchSize"] = self.batch_size
        if self.refinement:
            spec["refinement"] = {"enabled": True}
        if self.development_agent is not None:
            spec["agentAssignments"] = {"Development": self.development_agent}
        return m.batch(self.name, tickets, **spec)


@dataclass(frozen=True)
class Scenario:
    batches: tuple[BatchPlan, ...]
    caps: dict[str, int | None]
    with_docs: bool
    parallel_stages: bool
    failure_strategy: str
    max_retries: int | None
    failure_rate: float
    seed: int

    # the workflow: implement (a Development agent) -> test (QA) [and -> docs (dev-b, by name)]
    @property
    def stages(self) -> dict[str, list[str]]:
        stages = {"implement": [], "test": ["implement"]}
        if self.with_docs:
            stages["docs"] = ["implement"]
        return stages

    def candidates(self, stage: str) -> tuple[str, ...]:
        """Who may run the stage; only the count matters to the expectations below."""
        return {"test": QA_AGENTS, "docs": ("dev-b",)}.get(stage, DEV_AGENTS)

    def resources(self) -> list[Any]:
        stage_docs = [
            m.stage("implement"),
            m.stage("test", "implement", agentType="QualityAssurance"),
        ]
        if self.with_docs:
            stage_docs.append(
                m.stage("docs", "implement", agentType=None, agentRef={"name": "dev-b"})
            )
        flow: dict[str, Any] = {
            "parallelExecution": self.parallel_stages,
            "failureStrategy": self.failure_strategy,
        }
        if self.max_retries is not None:
            flow["maxRetries"] = self.max_retries
        agents = []
        for name in (*DEV_AGENTS, *QA_AGENTS):
            cap = self.caps[name]
            extra = {"maxParallelTasks": cap} if cap is not None else {}
            kind = "QualityAssurance" if name in QA_AGENTS else "Development"
            agents.append(m.agent(name, agentType=kind, **extra))
        docs = [
            m.project(),
            *agents,
            m.workflow("flow", stage_docs, **flow),
            *(b.manifest() for b in self.batches),
        ]
        return [build(d) for d in docs]

    # outcomes and durations are fixed per run name, whatever order runs start in
    def fails(self, name: str) -> bool:
        return random.Random(f"{self.seed}/outcome/{name}").random() < self.failure_rate

    def duration(self, request: RunRequest) -> float:
        return float(1 + random.Random(f"{self.seed}/duration/{request.name}").randrange(6))

    def outcome(self, request: RunRequest) -> bool:
        if request.kind == RunKind.REFINEMENT:
            return True
        return not self.fails(request.name)

    # what the spec says should happen, worked out without the engine
    def attempts_allowed(self, stage: str) -> int:
        if self.failure_strategy == "RetryWithDifferentAgent":
            budget = (
                self.max_retries
                if self.max_retries is not None
                else len(self.candidates(stage)) - 1
            )
            return min(budget + 1, len(self.candidates(stage)))
        return (self.max_retries or 0) + 1

    def stage_exhausts(self, task: str, stage: str) -> bool:
        return all(
            self.fails(run_name(task, stage, n)) for n in range(1, self.attempts_allowed(stage) + 1)
        )

    def task_fails(self, task: str) -> bool:
        """Every stage's dependencies start from implement, so any exhausted stage is reached."""
        return any(self.stage_exhausts(task, s) for s in self.stages)


@st.composite
def batch_plans(draw: st.DrawFn, name: str, max_tasks: int) -> BatchPlan:
    n = draw(st.integers(1, max_tasks))
    deps = tuple(
        tuple(sorted(draw(st.sets(st.integers(0, i - 1), max_size=min(i, 3))))) if i else ()
        for i in range(n)
    )
    return BatchPlan(
        name=name,
        deps=deps,
        complexities=tuple(draw(st.lists(st.none() | st.integers(1, 10), min_size=n, max_size=n))),
        priorities=tuple(draw(st.lists(st.sampled_from(PRIORITIES), min_size=n, max_size=n))),
        strategy=draw(st.sampled_from(STRATEGIES)),
        parallel_limit=draw(st.integers(1, 8)),
        batch_size=draw(st.none() | st.integers(1, 5)),
        refinement=draw(st.booleans()),
        development_agent=draw(st.sampled_from((None, "dev-b"))),
    )


@st.composite
def scenarios(
    draw: st.DrawFn,
    batches: int | None = None,
    failure_rate: float | None = None,
    failure_strategy: str | None = None,
    max_tasks: int = 25,
) -> Scenario:
    count = batches if batches is not None else draw(st.integers(1, 2))
    plans = tuple(
        draw(batch_plans(name, max_tasks if count == 1 else max_tasks // 2))
        for name in ("b1", "b2")[:count]
    )
    return Scenario(
        batches=plans,
        caps={a: draw(st.none() | st.integers(1, 3)) for a in (*DEV_AGENTS, *QA_AGENTS)},
        with_docs=draw(st.booleans()),
        parallel_stages=draw(st.booleans()),
        failure_strategy=failure_strategy or draw(st.sampled_from(FAILURE_STRATEGIES)),
        max_retries=draw(st.none() | st.integers(0, 2)),
        failure_rate=(
            failure_rate if failure_rate is not None else draw(st.sampled_from((0.0, 0.15, 0.4)))
        ),
        seed=draw(st.integers(0, 2**16)),
    )


# --- a simulation that checks itself -------------------------------------------------------


@dataclass
class CheckedSimulation(Simulation):
    """A Simulation that checks each decide() call it makes, as asked.

    check_limits: after the actions are applied, no batch and no agent has more runs in flight
    than allowed; a breach fails at once, so hypothesis shrinks a short simulation.
    check_determinism / check_purity / check_listing_order: decide() again on the same
    snapshot, on an untouched deep copy, and on the snapshot listed in another order.
    """

    check_limits: bool = False
    check_determinism: bool = False
    check_purity: bool = False
    check_listing_order: bool = False

    def step(self) -> list[Action]:
        snapshot = self.snapshot()
        pristine = deepcopy(snapshot) if self.check_purity else None
        actions = decide(snapshot)
        if self.check_determinism:
            assert decide(snapshot) == actions, f"decide() differs on one snapshot at {self.clock}"
        if self.check_listing_order:
            # Drivers list objects in their own order (SQLite rows, the Kubernetes API): the
            # order may change the actions' order, never which actions there are.
            shuffled = replace(
                snapshot,
                batches=list(reversed(snapshot.batches)),
                tasks=list(reversed(snapshot.tasks)),
                runs=list(reversed(snapshot.runs)),
            )
            assert Counter(map(repr, decide(shuffled))) == Counter(map(repr, actions)), (
                f"decide() depends on the snapshot's listing order at t={self.clock}"
            )
        if pristine is not None:
            assert snapshot == pristine, f"decide() changed its snapshot at t={self.clock}"
            assert decide(pristine) == actions, f"decide() differs on a copy at t={self.clock}"
        self.decide_calls += 1
        for action in actions:
            self.apply(action)
        if self.check_limits:
            self._check_limits()
        return actions

    def _check_limits(self) -> None:
        by_batch: dict[str, int] = defaultdict(int)
        by_agent: dict[str, int] = defaultdict(int)
        for r in self.runs.values():
            if not r.observed.phase.finished:
                by_batch[r.request.batch or ""] += 1
                by_agent[r.request.agent] += 1
        for name, count in by_batch.items():
            limit = self.batches[name].spec.parallel_limit
            assert count <= limit, (
                f"t={self.clock}: batch {name} has {count} runs in flight, limit {limit}"
            )
        for name, count in by_agent.items():
            cap = self.agents[name].spec.max_parallel_tasks
            assert cap is None or count <= cap, (
                f"t={self.clock}: agent {name} has {count} runs in flight, cap {cap}"
            )


def simulate(scenario: Scenario, **checks: bool) -> CheckedSimulation:
    sim = CheckedSimulation.from_resources(
        scenario.resources(), duration=scenario.duration, outcome=scenario.outcome
    )
    assert isinstance(sim, CheckedSimulation)
    for name, value in checks.items():
        setattr(sim, name, value)
    sim.run(max_steps=5_000)
    return sim


def phase_of(sim: Simulation, task: str) -> str:
    status = sim.tasks[task].status
    return str(status.phase) if status is not None and status.phase else "Pending"


def batch_phase_of(sim: Simulation, batch: str) -> str:
    status = sim.batches[batch].status
    return str(status.phase) if status is not None and status.phase else "Pending"


def end_of(sim: Simulation, name: str) -> float:
    end = seconds(sim.runs[name].observed.finish_time)
    return float("inf") if end is None else end


def stage_runs(sim: Simulation) -> dict[tuple[str, str], list[str]]:
    """Runs of every task stage, by attempt."""
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, r in sim.runs.items():
        if r.request.kind == RunKind.STAGE and r.request.task is not None:
            found[(r.request.task, r.request.stage)].append(name)
    for names in found.values():
        names.sort(key=lambda n: sim.runs[n].request.attempt)
    return found


def succeeded_at(sim: Simulation, runs: Sequence[str]) -> float | None:
    """When the one succeeded run among `runs` ended, or None."""
    ends = [end_of(sim, n) for n in runs if sim.runs[n].observed.phase == RunPhase.SUCCEEDED]
    return min(ends) if ends else None


def expected_phases(scenario: Scenario, plan: BatchPlan) -> dict[str, str]:
    """ContinueOthers (and RetryWithDifferentAgent once out of agents), EscalateToHuman."""
    escalate = scenario.failure_strategy == "EscalateToHuman"
    expected: dict[str, str] = {}
    for i, deps in enumerate(plan.deps):
        name = plan.task(i)
        dep_phases = {expected[plan.task(d)] for d in deps}
        if escalate and dep_phases & {"Escalated", "Pending"}:
            expected[name] = "Pending"
        elif dep_phases & {"Failed", "DependencyFailed"}:
            expected[name] = "DependencyFailed"
        elif scenario.task_fails(name):
            expected[name] = "Escalated" if escalate else "Failed"
        else:
            expected[name] = "Succeeded"
    return expected


# --- (a) limits ----------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(scenarios(batches=1))
def test_a_batch_never_runs_more_than_its_parallel_limit_nor_an_agent_past_its_cap(
    scenario: Scenario,
) -> None:
    simulate(scenario, check_limits=True)  # after every decide()


def one_task_batch(name: str) -> BatchPlan:
    return BatchPlan(name, ((),), (None,), ("medium",), "DependencyAware", 1, None, False)


# The smallest case: each batch fills its only slot with the capped agent in one decide().
SHARED_CAP = Scenario(
    batches=(one_task_batch("b1"), one_task_batch("b2")),
    caps={"dev-a": 1, "dev-b": None, "qa": None},
    with_docs=False,
    parallel_stages=False,
    failure_strategy="ContinueOthers",
    max_retries=None,
    failure_rate=0.0,
    seed=0,
)


@PROPERTY_SETTINGS
@example(SHARED_CAP)
@given(scenarios(batches=2, max_tasks=12))
def test_agent_caps_hold_across_batches_sharing_the_agents(scenario: Scenario) -> None:
    simulate(scenario, check_limits=True)  # after every decide()


# --- (b) dependencies and (d) no succeeded stage runs again ---------------------------------


@PROPERTY_SETTINGS
@given(scenarios())
def test_no_run_starts_before_the_stages_and_tasks_it_depends_on_succeeded(
    scenario: Scenario,
) -> None:
    sim = simulate(scenario)
    runs = stage_runs(sim)
    graphs = {plan.name: plan.graph() for plan in scenario.batches}

    for (task, stage), names in runs.items():
        batch = sim.tasks[task].spec.batch_ref
        assert batch is not None
        for name in names:
            start = sim.runs[name].started
            for dep_stage in scenario.stages[stage]:
                done = succeeded_at(sim, runs.get((task, dep_stage), []))
                assert done is not None, f"{name} ran though stage {dep_stage} never succeeded"
                assert done <= start, f"{name} started at {start}, {dep_stage} ended at {done}"
            for dep_task in graphs[batch.name][task]:
                for dep_stage in scenario.stages:
                    done = succeeded_at(sim, runs.get((dep_task, dep_stage), []))
                    assert done is not None, f"{name} ran though {dep_task} never succeeded"
                    assert done <= start, f"{name} started at {start}, {dep_task} done at {done}"
            refine = f"{batch.name}-refine-1"
            if refine in sim.runs:
                assert end_of(sim, refine) <= start
        # The statuses agree: a task that ran has every dependency Succeeded.
        for dep_task in graphs[batch.name][task]:
            assert phase_of(sim, dep_task) == "Succeeded", (task, dep_task)


@PROPERTY_SETTINGS
@given(scenarios())
def test_a_succeeded_stage_is_never_started_again(scenario: Scenario) -> None:
    sim = simulate(scenario)

    for (task, stage), names in stage_runs(sim).items():
        attempts = [sim.runs[n].request.attempt for n in names]
        assert attempts == list(range(1, len(names) + 1)), (task, stage, attempts)
        phases = [sim.runs[n].observed.phase for n in names]
        if RunPhase.SUCCEEDED in phases:
            assert phases.index(RunPhase.SUCCEEDED) == len(phases) - 1, (task, stage, phases)
        for earlier, later in itertools.pairwise(names):
            assert sim.runs[later].started >= end_of(sim, earlier), (earlier, later)
        assert len(names) <= scenario.attempts_allowed(stage), (task, stage, names)


# --- (c) failure strategies and (f) termination --------------------------------------------


@PROPERTY_SETTINGS
@given(scenarios(failure_rate=0.0))
def test_with_every_run_succeeding_every_task_and_batch_succeeds(scenario: Scenario) -> None:
    sim = simulate(scenario)

    for plan in scenario.batches:
        assert batch_phase_of(sim, plan.name) == "Succeeded"
        assert {phase_of(sim, plan.task(i)) for i in range(len(plan.deps))} == {"Succeeded"}
    assert len(sim.runs) == sum(
        len(plan.deps) * len(scenario.stages)
        + (len(refinement_groups(sim.batches[plan.name])) if plan.refinement else 0)
        for plan in scenario.batches
    ), "one run per task stage, one per refinement group"


@PROPERTY_SETTINGS
@given(
    st.sampled_from(("ContinueOthers", "RetryWithDifferentAgent")).flatmap(
        lambda strategy: scenarios(failure_strategy=strategy, failure_rate=0.4)
    )
)
def test_continue_others_fails_exactly_the_failed_tasks_and_their_dependents(
    scenario: Scenario,
) -> None:
    sim = simulate(scenario)

    for plan in scenario.batches:
        expected = expected_phases(scenario, plan)
        actual = {name: phase_of(sim, name) for name in expected}
        assert actual == expected
        for name, phase in expected.items():
            if phase == "DependencyFailed":
                assert not any(r.request.task == name for r in sim.runs.values()), name
        good = set(expected.values()) == {"Succeeded"}
        assert batch_phase_of(sim, plan.name) == ("Succeeded" if good else "Failed")


@PROPERTY_SETTINGS
@given(scenarios(failure_strategy="AbortAll", failure_rate=0.15))
def test_abort_all_fails_the_batch_and_leaves_nothing_unfinished(scenario: Scenario) -> None:
    sim = simulate(scenario)

    assert all(r.observed.phase.finished for r in sim.runs.values())
    for plan in scenario.batches:
        names = [plan.task(i) for i in range(len(plan.deps))]
        phases = {name: phase_of(sim, name) for name in names}
        doomed = [name for name in names if scenario.task_fails(name)]
        if not doomed:
            assert set(phases.values()) == {"Succeeded"}
            assert batch_phase_of(sim, plan.name) == "Succeeded"
            continue
        assert batch_phase_of(sim, plan.name) == "Failed"
        assert set(phases.values()) <= {"Succeeded", "Failed", "Aborted", "DependencyFailed"}
        failed = [n for n, p in phases.items() if p == "Failed"]
        assert failed
        assert set(failed) <= set(doomed)
        assert all(not scenario.task_fails(n) for n, p in phases.items() if p == "Succeeded")
        status = sim.batches[plan.name].status
        assert status is not None
        over = seconds(status.completion_time)
        assert over is not None
        mine = [r for r in sim.runs.values() if r.request.batch == plan.name]
        assert all(r.started <= over and end_of(sim, r.request.name) <= over for r in mine)


@PROPERTY_SETTINGS
@given(scenarios(failure_strategy="EscalateToHuman", failure_rate=0.4))
def test_escalate_to_human_parks_failed_tasks_and_never_finishes_the_batch_with_them(
    scenario: Scenario,
) -> None:
    sim = simulate(scenario)

    assert all(r.observed.phase.finished for r in sim.runs.values())
    for plan in scenario.batches:
        expected = expected_phases(scenario, plan)
        actual = {name: phase_of(sim, name) for name in expected}
        if plan.strategy == "ParallelBatch":
            # A wave with an escalated task never closes: later waves may not have started.
            for name, phase in actual.items():
                ran = any(r.request.task == name for r in sim.runs.values())
                assert phase == expected[name] or (phase == "Pending" and not ran), name
        else:
            assert actual == expected
        if "Escalated" in actual.values():
            assert batch_phase_of(sim, plan.name) == "Processing"
        else:
            assert set(actual.values()) == {"Succeeded"}
            assert batch_phase_of(sim, plan.name) == "Succeeded"


@PROPERTY_SETTINGS
@given(scenarios())
def test_every_run_ends_with_every_batch_finished_unless_a_human_is_awaited(
    scenario: Scenario,
) -> None:
    sim = simulate(scenario)

    assert all(r.observed.phase.finished for r in sim.runs.values()), "a run was left running"
    for plan in scenario.batches:
        phase = batch_phase_of(sim, plan.name)
        escalated = any(phase_of(sim, plan.task(i)) == "Escalated" for i in range(len(plan.deps)))
        if escalated:
            assert scenario.failure_strategy == "EscalateToHuman"
            assert phase == "Processing"
        else:
            assert phase in ("Succeeded", "Failed"), f"{plan.name} stuck in {phase}"
    # Once there, decide() has nothing more to do.
    assert [a for a in decide(sim.snapshot()) if type(a).__name__ != "RecordEvent"] == []


# --- (e) determinism -----------------------------------------------------------------------


@settings(PROPERTY_SETTINGS, max_examples=30)
@given(scenarios(max_tasks=10))
def test_decide_returns_equal_actions_for_equal_snapshots_and_leaves_them_alone(
    scenario: Scenario,
) -> None:
    simulate(scenario, check_determinism=True, check_purity=True, check_listing_order=True)
