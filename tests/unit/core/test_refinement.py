"""Refinement: one agent run turns a batch's raw tickets into the tasks it will run."""

from __future__ import annotations

from typing import Any

import pytest

from agentfleet.core.actions import CancelRun, CreateTask, SetStatus, StartRun
from agentfleet.core.reconcile import decide
from agentfleet.models.run import AttemptPhase, RunKind
from agentfleet.models.task import ACTION_ANNOTATION
from agentfleet.simulate import Simulation

from .fleet import (
    annotate,
    batch_phase,
    batch_reason,
    dev,
    finish_run,
    fleet,
    of_type,
    qa,
    run,
    simulation,
    task,
    task_phases,
    ticket,
)

REFINE_1 = "b1-refine-1"
REFINE_2 = "b1-refine-2"
RAW = [ticket("T-1", estimatedComplexity=5, priority="high"), ticket("T-2")]


def refining(
    tickets: list[dict[str, Any]] | None = None,
    agents: list[dict[str, Any]] | None = None,
    **refinement: Any,
) -> Simulation:
    return simulation(
        fleet(
            tickets or RAW,
            agents=agents,
            refinement={"enabled": True, **refinement},
        ),
        duration=10,
    )


def refined(id_: str, *deps: str, **fields: Any) -> dict[str, Any]:
    return {"id": id_, "title": f"refined {id_}", "dependencies": list(deps), **fields}


def attempts(sim: Simulation) -> list[tuple[str, str, str]]:
    status = sim.batches["b1"].status
    assert status is not None
    return [(a.run_name, str(a.phase), a.reason) for a in status.refinement_attempts]


def test_a_refining_batch_starts_one_refinement_run_and_creates_no_task_yet() -> None:
    sim = refining(agents=[dev("dev-b"), dev("dev-a")])

    actions = sim.step()

    [start] = of_type(actions, StartRun)
    assert (start.run.name, start.run.kind, start.run.batch, start.run.task) == (
        REFINE_1,
        RunKind.REFINEMENT,
        "b1",
        None,
    )
    assert start.run.agent == "dev-a", "the first Development agent by name"
    assert of_type(actions, CreateTask) == []
    assert batch_phase(sim) == "Refining"


@pytest.mark.parametrize(
    ("settings", "agent"),
    [
        pytest.param({"agentRef": {"name": "dev-b"}}, "dev-b", id="agent-ref"),
        pytest.param({"agentType": "QualityAssurance"}, "qa", id="agent-type"),
    ],
)
def test_the_refinement_agent_is_the_one_the_batch_names(
    settings: dict[str, Any], agent: str
) -> None:
    sim = refining(agents=[dev("dev-a"), dev("dev-b"), qa()], **settings)

    [start] = of_type(sim.step(), StartRun)

    assert start.run.agent == agent


def test_a_missing_refinement_agent_keeps_the_batch_pending() -> None:
    sim = refining(agentRef={"name": "ghost"})

    sim.run()

    assert batch_phase(sim) == "Pending"
    assert batch_reason(sim) == "AgentNotFound"
    assert sim.runs == {}


def test_refined_tickets_become_the_batch_tasks_with_inferred_dependencies_merged() -> None:
    sim = refining(tickets=[*RAW, ticket("T-3", "T-1")], strategy="Sequential")
    sim.settle()

    finish_run(
        sim,
        REFINE_1,
        refinedTickets=[
            refined("T-1", acceptanceCriteria=["it works"], agentType="Documentation"),
            refined("T-2", "T-1", complexity=2, priority="critical", likelyFiles=["a.py"]),
            refined("T-3", "T-2"),
        ],
    )
    sim.settle()

    assert sorted(sim.tasks) == [task("T-1"), task("T-2"), task("T-3")]
    first, second = sim.tasks[task("T-1")].spec, sim.tasks[task("T-2")].spec
    assert (first.title, first.acceptance_criteria) == ("refined T-1", ["it works"])
    assert (first.complexity, first.priority) == (5, "high"), "kept from the raw ticket"
    assert first.description == "do T-1"
    assert first.suggested_agent_type == "Documentation"
    assert (second.dependencies, second.complexity, second.priority) == (
        [task("T-1")],
        2,
        "critical",
    )
    assert second.likely_files == ["a.py"]
    assert sim.tasks[task("T-3")].spec.dependencies == [task("T-1"), task("T-2")], (
        "the explicit dependency first, then the inferred one"
    )
    assert attempts(sim) == [(REFINE_1, "Succeeded", "Succeeded")]
    assert batch_phase(sim) == "Processing"
    sim.run()
    assert set(task_phases(sim).values()) == {"Succeeded"}
    assert batch_phase(sim) == "Succeeded"


def test_a_whole_batch_runs_through_refinement_to_success() -> None:
    sim = refining(tickets=[ticket("T-1"), ticket("T-2", "T-1")], strategy="Sequential")

    sim.run()

    assert sim.runs[REFINE_1].started == 0
    assert sim.runs[run("T-1")].started == 10
    assert sim.runs[run("T-2")].started == 20
    assert batch_phase(sim) == "Succeeded"


def test_inferred_dependencies_that_close_a_cycle_fail_the_batch_naming_it() -> None:
    sim = refining()
    sim.settle()

    finish_run(sim, REFINE_1, refinedTickets=[refined("T-1", "T-2"), refined("T-2", "T-1")])
    sim.settle()

    assert batch_phase(sim) == "Failed"
    assert batch_reason(sim) == "DependencyCycle"
    status = sim.batches["b1"].status
    assert status is not None
    [succeeded] = [c for c in status.conditions if c.type == "Succeeded"]
    assert "T-1 -> T-2 -> T-1" in succeeded.message or "T-2 -> T-1 -> T-2" in succeeded.message
    assert sim.tasks == {}


def test_an_unusable_ticket_is_asked_for_again_alone_with_its_errors() -> None:
    sim = refining()
    sim.settle()

    finish_run(
        sim,
        REFINE_1,
        refinedTickets=[refined("T-1")],
        refinementErrors={"T-2": "tickets[1].complexity: Input should be an integer"},
    )
    actions = sim.step()

    [again] = of_type(actions, StartRun)
    assert again.run.name == REFINE_2
    assert again.run.tickets == ("T-2",)
    assert again.run.feedback == ("T-2: tickets[1].complexity: Input should be an integer",)
    assert [t.id for t in again.run.refined] == ["T-1"], "it sees what is already refined"
    assert batch_phase(sim) == "Refining"
    assert any(e.reason == "RefinementFailed" for e in sim.events)
    assert sim.tasks == {}

    finish_run(sim, REFINE_2, refinedTickets=[refined("T-2", "T-1")])
    sim.run()
    assert batch_phase(sim) == "Succeeded"
    assert sim.tasks[task("T-2")].spec.dependencies == [task("T-1")]


def test_a_ticket_unusable_twice_is_marked_invalid_and_its_dependents_do_not_run() -> None:
    sim = refining(
        tickets=[ticket("T-1"), ticket("T-2", "T-1"), ticket("T-3")], strategy="Sequential"
    )
    sim.settle()
    finish_run(
        sim,
        REFINE_1,
        refinedTickets=[refined("T-2"), refined("T-3")],
        refinementErrors={"T-1": "bad"},
    )
    sim.settle()
    finish_run(sim, REFINE_2, refinedTickets=[], refinementErrors={"T-1": "still bad"})
    sim.run()

    status = sim.batches["b1"].status
    assert status is not None
    entry = next(e for e in status.tickets if e.id == "T-1")
    assert (entry.reason, entry.message) == ("InvalidRefinement", "still bad")
    assert task_phases(sim) == {
        task("T-1"): "Failed",
        task("T-2"): "DependencyFailed",
        task("T-3"): "Succeeded",
    }
    failed = sim.tasks[task("T-1")].status
    assert failed is not None
    assert failed.conditions[0].reason == "InvalidRefinement"
    assert sorted(sim.runs) == [REFINE_1, REFINE_2, run("T-3")]
    assert batch_phase(sim) == "Failed"


def test_an_answer_with_nothing_usable_is_retried_once_then_its_tickets_are_invalid() -> None:
    sim = refining()
    sim.settle()

    finish_run(sim, REFINE_1, ok=False, reason="InvalidRefinement", message="no JSON")
    sim.settle()
    assert attempts(sim)[0] == (REFINE_1, "Failed", "InvalidRefinement")
    finish_run(sim, REFINE_2, ok=False, reason="InvalidRefinement", message="no JSON again")
    sim.run()

    assert task_phases(sim) == {task("T-1"): "Failed", task("T-2"): "Failed"}
    assert batch_phase(sim) == "Failed"


@pytest.mark.parametrize(
    ("settings", "groups"),
    [
        pytest.param({}, [["T-1", "T-2", "T-3", "T-4"]], id="sequential-one-run"),
        pytest.param({"batchSize": 3}, [["T-1", "T-2", "T-3"], ["T-4"]], id="sequential-3"),
        pytest.param(
            {"strategy": "ParallelBatch", "batchSize": 2},
            [["T-1", "T-2"], ["T-3", "T-4"]],
            id="parallel-2",
        ),
        pytest.param(
            {"strategy": "DependencyAware"},
            [["T-1", "T-3"], ["T-2"], ["T-4"]],
            id="dependency-levels",
        ),
    ],
)
def test_the_strategy_splits_the_tickets_into_refinement_groups(
    settings: dict[str, Any], groups: list[list[str]]
) -> None:
    tickets = [ticket("T-1"), ticket("T-2", "T-1"), ticket("T-3"), ticket("T-4", "T-2")]
    sim = simulation(
        fleet(
            tickets,
            refinement={"enabled": True, "strategy": "Sequential", **settings},
            parallelLimit=5,
        ),
        duration=10,
    )

    sim.run()

    refinements = sorted(
        (r for r in sim.runs.values() if r.request.kind == RunKind.REFINEMENT),
        key=lambda r: r.request.attempt,
    )
    every = [t["id"] for t in tickets]
    assert [list(r.request.tickets) or every for r in refinements] == groups
    assert batch_phase(sim) == "Succeeded"


def test_parallel_groups_refine_side_by_side_and_later_waves_wait() -> None:
    tickets = [ticket("T-1"), ticket("T-2"), ticket("T-3", "T-1")]
    parallel = simulation(
        fleet(
            tickets,
            refinement={"enabled": True, "strategy": "ParallelBatch", "batchSize": 1},
            parallelLimit=3,
        ),
        duration=10,
    )
    parallel.settle()
    assert sorted(r.request.tickets for r in parallel.runs.values()) == [
        ("T-1",),
        ("T-2",),
        ("T-3",),
    ]

    aware = simulation(
        fleet(
            tickets, refinement={"enabled": True, "strategy": "DependencyAware"}, parallelLimit=3
        ),
        duration=10,
    )
    aware.settle()
    assert [r.request.tickets for r in aware.runs.values()] == [("T-1", "T-2")]
    finish_run(aware, REFINE_1, refinedTickets=[refined("T-1"), refined("T-2")])
    aware.settle()
    later = aware.runs["b1-refine-2"].request
    assert later.tickets == ("T-3",)
    assert [t.id for t in later.refined] == ["T-1", "T-2"]


def test_a_batch_sums_the_usage_of_its_refinement_and_every_task_attempt() -> None:
    sim = refining()
    sim.settle()
    finish_run(
        sim,
        REFINE_1,
        refinedTickets=[refined("T-1"), refined("T-2")],
        tokens={"input": 100, "output": 20},
        costUsd=0.5,
    )
    sim.run()

    status = sim.batches["b1"].status
    assert status is not None
    assert (status.usage.input_tokens, status.usage.output_tokens) == (100, 20)
    assert status.usage.cost_usd == 0.5
    assert status.usage.attempts == 1, "the simulated stage runs report no usage"


def test_a_refinement_run_that_fails_is_retried_then_fails_the_batch() -> None:
    sim = simulation(fleet(RAW, refinement={"enabled": True}), failing=lambda r: True)

    sim.run()

    assert [a[:2] for a in attempts(sim)] == [(REFINE_1, "Failed"), (REFINE_2, "Failed")]
    assert batch_phase(sim) == "Failed"
    assert batch_reason(sim) == "RefinementFailed"


def test_a_refinement_run_the_driver_has_not_created_is_asked_for_again() -> None:
    sim = refining()
    first = decide(sim.snapshot())
    for action in first:
        if not isinstance(action, StartRun):
            sim.apply(action)

    again = decide(sim.snapshot())

    assert of_type(again, StartRun) == of_type(first, StartRun)
    status = sim.batches["b1"].status
    assert status is not None
    assert [a.run_name for a in status.refinement_attempts] == [REFINE_1]


def test_refinement_with_execute_false_stops_at_refined_until_execute_is_set() -> None:
    sim = simulation(fleet(RAW, refinement={"enabled": True}, execute=False), duration=10)

    sim.run()

    assert batch_phase(sim) == "Refined"
    assert sorted(sim.tasks) == [task("T-1"), task("T-2")]
    assert list(sim.runs) == [REFINE_1]

    batch = sim.batches["b1"]
    sim.batches["b1"] = batch.model_copy(
        update={"spec": batch.spec.model_copy(update={"execute": True})}
    )
    sim.run()
    assert batch_phase(sim) == "Succeeded"


def test_aborting_a_refining_batch_cancels_the_refinement() -> None:
    sim = refining()
    sim.settle()

    annotate(sim, "b1", ACTION_ANNOTATION, "abort", kind="TicketBatch")
    actions = sim.step()

    assert REFINE_1 in {c.name for c in of_type(actions, CancelRun)}
    assert batch_phase(sim) == "Failed"
    status = [a.status for a in of_type(actions, SetStatus) if a.kind == "TicketBatch"]
    assert status[-1].refinement_attempts[0].phase == AttemptPhase.FAILED


def test_a_refinement_run_past_its_agent_timeout_is_cancelled_and_refinement_runs_again() -> None:
    sim = simulation(
        fleet(RAW, agents=[dev(timeoutSeconds=30)], refinement={"enabled": True}),
        duration=10_000,
    )
    sim.settle()
    assert list(sim.runs) == [REFINE_1]

    sim.clock = 29
    assert of_type(sim.step(), CancelRun) == []

    sim.clock = 30
    actions = sim.step()

    assert [(c.name, c.reason) for c in of_type(actions, CancelRun)] == [
        (REFINE_1, "DeadlineExceeded")
    ]
    assert attempts(sim)[0] == (REFINE_1, "Failed", "DeadlineExceeded")
    sim.settle()
    assert sim.runs[REFINE_2].started == 30, "the second attempt starts at once"
    assert batch_phase(sim) == "Refining"
    assert any(e.reason == "RefinementFailed" for e in sim.events)


def test_two_refinement_timeouts_fail_the_batch() -> None:
    sim = simulation(
        fleet(RAW, agents=[dev(timeoutSeconds=30)], refinement={"enabled": True}),
        duration=10_000,
    )
    sim.settle()
    sim.clock = 30
    sim.settle()

    sim.clock = 59
    assert of_type(sim.step(), CancelRun) == [], "the deadline counts from the second start"
    sim.clock = 60
    actions = sim.step()

    assert [(c.name, c.reason) for c in of_type(actions, CancelRun)] == [
        (REFINE_2, "DeadlineExceeded")
    ]
    sim.settle()
    assert attempts(sim) == [
        (REFINE_1, "Failed", "DeadlineExceeded"),
        (REFINE_2, "Failed", "DeadlineExceeded"),
    ]
    assert batch_phase(sim) == "Failed"
    assert batch_reason(sim) == "RefinementFailed"
    assert sorted(sim.runs) == [REFINE_1, REFINE_2]
    assert all(r.observed.phase.finished for r in sim.runs.values())
    assert sim.tasks == {}


def test_a_lost_retry_request_is_asked_for_again_with_the_same_feedback_and_context() -> None:
    sim = refining()
    sim.settle()
    finish_run(sim, REFINE_1, refinedTickets=[refined("T-1")], refinementErrors={"T-2": "bad"})
    first = decide(sim.snapshot())
    for action in first:
        if not isinstance(action, StartRun):
            sim.apply(action)

    again = decide(sim.snapshot())

    assert of_type(again, StartRun) == of_type(first, StartRun)
    [start] = of_type(again, StartRun)
    assert (start.run.name, start.run.feedback) == (REFINE_2, ("T-2: bad",))
    assert [t.id for t in start.run.refined] == ["T-1"]


def test_without_a_batch_size_refinement_groups_hold_ten_tickets() -> None:
    tickets = [ticket(f"T-{n}") for n in range(12)]
    sim = simulation(fleet(tickets, refinement={"enabled": True}, parallelLimit=5), duration=10)

    sim.settle()

    groups = sorted(len(r.request.tickets) for r in sim.runs.values())
    assert groups == [2, 10], "a Pod's 4 KiB termination message must hold each answer"


def test_an_unusable_answer_and_a_crash_are_counted_apart() -> None:
    sim = refining(strategy="Sequential")
    sim.settle()
    finish_run(sim, REFINE_1, refinedTickets=[refined("T-1")], refinementErrors={"T-2": "bad"})
    sim.settle()
    finish_run(sim, REFINE_2, ok=False, reason="AgentFailed", message="the agent exited 1")
    actions = sim.step()

    [third] = of_type(actions, StartRun)
    assert (third.run.name, third.run.tickets) == ("b1-refine-3", ("T-2",))
    assert batch_phase(sim) == "Refining", "one bad answer and one crash are not two of either"


def test_an_attempt_records_the_agent_generation_its_run_was_built_from() -> None:
    sim = simulation(fleet([ticket("T-1")]), duration=10)
    sim.settle()

    finish_run(sim, run("T-1"), agentGeneration=7)
    sim.settle()

    status = sim.tasks[task("T-1")].status
    assert status is not None
    [stage] = [s for s in status.stages if s.attempts]
    assert stage.attempts[0].agent_generation == 7, "the run's own record wins over decide's"
