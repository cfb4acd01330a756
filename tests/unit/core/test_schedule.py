"""Scheduling: the three strategies, the batch parallel limit and each agent's cap."""

from __future__ import annotations

from agentfleet.core.schedule import Candidate, TaskInfo, admit, fill_slots, ordering_key
from agentfleet.models.batch import ExecutionStrategy

from ..models import manifests as m
from .fleet import (
    batch_phase,
    build,
    dev,
    ended,
    fleet,
    max_concurrency,
    qa,
    run,
    runs_of,
    simulation,
    stage,
    start_order,
    started,
    task,
    ticket,
)

TWO_STAGES = [stage("implement"), stage("test", "implement", agentType="QualityAssurance")]
DEPENDENCY_AWARE = ExecutionStrategy.DEPENDENCY_AWARE
INDEPENDENT = [ticket(f"T-{i}") for i in range(1, 7)]


# --- Sequential ----------------------------------------------------------------------------


def test_sequential_runs_one_task_at_a_time_in_priority_order() -> None:
    tickets = [
        ticket("T-1", priority="low"),
        ticket("T-2", priority="critical"),
        ticket("T-3", priority="medium"),
        ticket("T-4", priority="high"),
        ticket("T-5", priority="medium"),
    ]
    sim = simulation(
        fleet(
            tickets, stages=TWO_STAGES, agents=[dev(), qa()], strategy="Sequential", parallelLimit=4
        ),
        duration=10,
    )

    sim.run()

    assert start_order(sim) == [task(t) for t in ("T-2", "T-4", "T-3", "T-5", "T-1")]
    assert max_concurrency(sim) == 1
    # The next task starts when the previous one's last stage has ended, not its first.
    assert started(sim, run("T-4")) == ended(sim, run("T-2", "test")) == 20
    assert batch_phase(sim) == "Succeeded"


def test_sequential_takes_the_most_urgent_task_whose_dependencies_are_done() -> None:
    tickets = [
        ticket("T-1", priority="low"),
        ticket("T-2", "T-1", priority="critical"),
        ticket("T-3", priority="medium"),
    ]
    sim = simulation(fleet(tickets, strategy="Sequential"), duration=10)

    sim.run()

    assert start_order(sim) == [task("T-3"), task("T-1"), task("T-2")]


def test_sequential_moves_on_after_a_failed_task() -> None:
    sim = simulation(
        fleet([ticket("T-1"), ticket("T-2")], strategy="Sequential"),
        duration=10,
        failing={run("T-1")},
    )

    sim.run()

    assert started(sim, run("T-2")) == 10
    assert batch_phase(sim) == "Failed"


# --- ParallelBatch -------------------------------------------------------------------------


def test_parallel_batch_starts_a_wave_only_when_the_previous_one_has_finished() -> None:
    tickets = [ticket(f"T-{i}") for i in range(1, 6)]
    sim = simulation(
        fleet(tickets, strategy="ParallelBatch", batchSize=2, parallelLimit=5),
        duration={task("T-2"): 100, "*": 10},
    )

    sim.run()

    starts = {t: started(sim, run(t)) for t in ("T-1", "T-2", "T-3", "T-4", "T-5")}
    assert starts == {"T-1": 0, "T-2": 0, "T-3": 100, "T-4": 100, "T-5": 110}
    assert batch_phase(sim) == "Succeeded"
    waves = {name: t.status.wave for name, t in sim.tasks.items() if t.status is not None}
    assert waves == {task("T-1"): 1, task("T-2"): 1, task("T-3"): 2, task("T-4"): 2, task("T-5"): 3}


def test_parallel_batch_forms_waves_by_priority() -> None:
    tickets = [
        ticket("T-1", priority="low"),
        ticket("T-2", priority="high"),
        ticket("T-3", priority="medium"),
        ticket("T-4", priority="critical"),
    ]
    sim = simulation(fleet(tickets, strategy="ParallelBatch", batchSize=2), duration=10)

    sim.run()

    assert started(sim, run("T-4")) == started(sim, run("T-2")) == 0
    assert started(sim, run("T-3")) == started(sim, run("T-1")) == 10


def test_parallel_batch_without_batch_size_uses_the_parallel_limit() -> None:
    sim = simulation(
        fleet(INDEPENDENT, strategy="ParallelBatch", parallelLimit=4),
        duration={task("T-1"): 50, "*": 10},
    )

    sim.run()

    assert sorted(started(sim, run(f"T-{i}")) for i in range(1, 7)) == [0, 0, 0, 0, 50, 50]


def test_a_wave_larger_than_the_parallel_limit_still_keeps_the_limit() -> None:
    sim = simulation(
        fleet(INDEPENDENT, strategy="ParallelBatch", batchSize=4, parallelLimit=2),
        duration=10,
    )

    sim.run()

    assert max_concurrency(sim) == 2
    assert [started(sim, run(f"T-{i}")) for i in range(1, 7)] == [0, 0, 10, 10, 20, 20]


def test_parallel_batch_puts_a_dependent_in_a_later_wave() -> None:
    tickets = [ticket("T-1"), ticket("T-2", "T-1"), ticket("T-3")]
    sim = simulation(
        fleet(tickets, strategy="ParallelBatch", batchSize=3), duration={task("T-3"): 40, "*": 10}
    )

    sim.run()

    assert started(sim, run("T-2")) == 40, "after the whole first wave, not just after T-1"


def test_a_failed_task_still_closes_its_wave() -> None:
    sim = simulation(
        fleet(INDEPENDENT[:3], strategy="ParallelBatch", batchSize=2),
        duration=10,
        failing={run("T-1")},
    )

    sim.run()

    assert started(sim, run("T-3")) == 10
    assert batch_phase(sim) == "Failed"


# --- DependencyAware -----------------------------------------------------------------------


def test_dependency_aware_runs_the_longest_critical_path_first_then_priority() -> None:
    tickets = [
        ticket("A", estimatedComplexity=1),
        ticket("B", "A", estimatedComplexity=1),
        ticket("C", "B", estimatedComplexity=1),
        ticket("D", estimatedComplexity=5),
        ticket("E", estimatedComplexity=2, priority="high"),
    ]
    sim = simulation(fleet(tickets, strategy="DependencyAware", parallelLimit=1), duration=10)

    sim.run()

    # Critical paths: D 5, A 3 (A-B-C), then B 2 and E 2 tie and E is more urgent.
    assert start_order(sim) == [task(t) for t in ("D", "A", "E", "B", "C")]


def test_dependency_aware_breaks_remaining_ties_by_ticket_order() -> None:
    tickets = [ticket("Z"), ticket("M"), ticket("A")]
    sim = simulation(fleet(tickets, parallelLimit=1), duration=10)

    sim.run()

    assert start_order(sim) == [task("Z"), task("M"), task("A")]


def test_dependency_aware_starts_a_task_as_soon_as_its_dependencies_succeed() -> None:
    tickets = [ticket("T-1"), ticket("T-2"), ticket("T-3", "T-1")]
    sim = simulation(fleet(tickets), duration={task("T-2"): 100, "*": 10})

    sim.run()

    assert started(sim, run("T-3")) == 10


def test_dependency_aware_is_the_default_strategy() -> None:
    batch = build(m.batch(tickets=[ticket("T-1")]))

    assert batch.spec.strategy is ExecutionStrategy.DEPENDENCY_AWARE


# --- limits --------------------------------------------------------------------------------


def test_the_parallel_limit_bounds_the_runs_in_flight_and_freed_slots_are_reused() -> None:
    sim = simulation(fleet(INDEPENDENT, parallelLimit=2), duration={task("T-1"): 5, "*": 10})

    sim.run()

    assert max_concurrency(sim) == 2
    assert started(sim, run("T-3")) == 5


def test_the_parallel_limit_counts_runs_not_tasks() -> None:
    stages = [
        stage("implement"),
        stage("test", "implement", agentType="QualityAssurance"),
        stage("lint", "implement", agentType="QualityAssurance"),
    ]
    sim = simulation(
        fleet(
            INDEPENDENT[:2],
            stages=stages,
            agents=[dev(), qa()],
            parallelLimit=2,
            flow={"parallelExecution": True},
        ),
        duration=10,
    )

    sim.run()

    assert max_concurrency(sim) == 2
    assert batch_phase(sim) == "Succeeded"


def test_an_agent_never_runs_more_than_its_max_parallel_tasks() -> None:
    sim = simulation(
        fleet(
            INDEPENDENT[:4],
            stages=TWO_STAGES,
            agents=[dev(maxParallelTasks=1), qa()],
            parallelLimit=4,
        ),
        duration=10,
    )

    sim.run()

    assert max_concurrency(sim, lambda r: r.agent == "dev") == 1
    # A full agent is passed over, not waited on: QA runs beside the next development run.
    assert started(sim, run("T-2")) == started(sim, run("T-1", "test")) == 10
    assert batch_phase(sim) == "Succeeded"


def test_an_agent_cap_holds_across_batches() -> None:
    shared = [dev(maxParallelTasks=1)]
    resources = [
        *fleet(INDEPENDENT[:2], agents=shared, parallelLimit=1),
        build(m.batch("b2", INDEPENDENT[:2], workflowRef={"name": "flow"}, parallelLimit=1)),
    ]
    sim = simulation(resources, duration=10)

    sim.run()

    assert max_concurrency(sim, lambda r: r.agent == "dev") == 1
    assert batch_phase(sim, "b1") == batch_phase(sim, "b2") == "Succeeded"


def test_an_agent_cap_shared_by_batches_with_room_to_spare() -> None:
    shared = [dev(maxParallelTasks=2)]
    resources = [
        *fleet(INDEPENDENT[:3], agents=shared, parallelLimit=3),
        build(m.batch("b2", INDEPENDENT[:3], workflowRef={"name": "flow"}, parallelLimit=3)),
    ]
    sim = simulation(resources, duration=10)

    sim.run()

    assert max_concurrency(sim, lambda r: r.agent == "dev") == 2
    assert len(runs_of(sim, task("T-1", "b2"))) == 1


# --- the pure pieces -----------------------------------------------------------------------


def info(name: str, priority: int = 1, order: int = 0, critical: float = 1.0) -> TaskInfo:
    return TaskInfo(name=name, priority=priority, order=order, critical_path=critical)


def candidate(name: str, agent: str = "dev") -> Candidate:
    return Candidate(name, "implement", agent, (0.0, 0, 0, name))


def test_ordering_key_ignores_the_critical_path_except_for_dependency_aware() -> None:
    long, urgent = info("long", priority=0, critical=9), info("urgent", priority=3, critical=1)

    aware = sorted([urgent, long], key=lambda t: ordering_key(DEPENDENCY_AWARE, t))
    queue = sorted([long, urgent], key=lambda t: ordering_key(ExecutionStrategy.SEQUENTIAL, t))

    assert [t.name for t in aware] == ["long", "urgent"]
    assert [t.name for t in queue] == ["urgent", "long"]


def test_sequential_admits_nothing_while_a_task_is_active() -> None:
    ready = [info("a"), info("b")]

    busy = admit(
        ExecutionStrategy.SEQUENTIAL,
        ready=ready,
        active=1,
        unfinished_in_wave=0,
        current_wave=None,
        batch_size=3,
    )
    idle = admit(
        ExecutionStrategy.SEQUENTIAL,
        ready=ready,
        active=0,
        unfinished_in_wave=0,
        current_wave=None,
        batch_size=3,
    )

    assert busy.admitted == ()
    assert idle.admitted == ("a",)


def test_parallel_batch_admits_a_new_wave_only_past_the_barrier() -> None:
    ready = [info("a", order=0), info("b", order=1), info("c", order=2)]

    blocked = admit(
        ExecutionStrategy.PARALLEL_BATCH,
        ready=ready,
        active=0,
        unfinished_in_wave=1,
        current_wave=4,
        batch_size=2,
    )
    opened = admit(
        ExecutionStrategy.PARALLEL_BATCH,
        ready=ready,
        active=0,
        unfinished_in_wave=0,
        current_wave=4,
        batch_size=2,
    )

    assert (blocked.admitted, blocked.wave) == ((), 4)
    assert (opened.admitted, opened.wave) == (("a", "b"), 5)


def test_fill_slots_stops_at_the_free_slots_and_passes_over_full_agents() -> None:
    chosen, room = fill_slots(
        [candidate("a", "full"), candidate("b"), candidate("c", "free"), candidate("d")],
        free_slots=2,
        agent_free={"full": 0, "dev": 5, "free": None},
    )

    assert [c.task for c in chosen] == ["b", "c"]
    assert room["full"] == 0
    assert room["free"] is None


def test_fill_slots_reports_the_room_each_chosen_candidate_took() -> None:
    """The room left is handed on to the next batch of the same decide() call."""
    chosen, room = fill_slots([candidate("a"), candidate("b")], free_slots=1, agent_free={"dev": 1})

    assert [c.task for c in chosen] == ["a"]
    assert room == {"dev": 0}
