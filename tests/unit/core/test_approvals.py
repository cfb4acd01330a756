"""Required approvals: a stage's successful result counts once enough distinct people approve."""

from __future__ import annotations

from agentfleet.core.actions import StartRun
from agentfleet.core.reconcile import decide
from agentfleet.models.task import APPROVE_ANNOTATION_PREFIX
from agentfleet.simulate import Simulation

from .fleet import (
    annotate,
    batch_phase,
    batch_reason,
    dev,
    fleet,
    of_type,
    qa,
    run,
    runs_of,
    simulation,
    stage,
    started,
    task,
    task_phase,
    ticket,
)

APPROVE_IMPLEMENT = APPROVE_ANNOTATION_PREFIX + "implement"


def gated(approvals: int = 2, tickets: list[dict[str, object]] | None = None) -> Simulation:
    stages = [
        stage("implement", requiredApprovals=approvals),
        stage("test", "implement", agentType="QualityAssurance"),
    ]
    return simulation(fleet(tickets, stages=stages, agents=[dev(), qa()]), duration=10)


def implement_phase(sim: Simulation, ticket_id: str = "T-1") -> str:
    status = sim.tasks[task(ticket_id)].status
    assert status is not None
    implement = status.stage("implement")
    assert implement is not None
    return str(implement.phase)


def test_a_succeeded_stage_that_needs_approvals_waits_for_them() -> None:
    sim = gated()

    sim.run()

    assert implement_phase(sim) == "AwaitingApproval"
    assert task_phase(sim, task("T-1")) == "AwaitingApproval"
    assert runs_of(sim, task("T-1")) == [run("T-1")], "the next stage waits"
    assert batch_phase(sim) == "Processing"
    assert batch_reason(sim) == "AwaitingApproval"
    assert any(e.reason == "ApprovalRequired" for e in sim.events)


def test_enough_distinct_approvers_let_the_task_proceed() -> None:
    sim = gated()
    sim.run()
    sim.clock = 500

    annotate(sim, task("T-1"), APPROVE_IMPLEMENT, "alice, bob")
    sim.run()

    assert implement_phase(sim) == "Succeeded"
    assert started(sim, run("T-1", "test")) == 500
    assert task_phase(sim, task("T-1")) == "Succeeded"
    assert batch_phase(sim) == "Succeeded"
    status = sim.tasks[task("T-1")].status
    assert status is not None
    implement = status.stage("implement")
    assert implement is not None
    assert implement.approvals == ["alice", "bob"]


def test_too_few_approvers_keep_the_stage_waiting() -> None:
    sim = gated()
    sim.run()

    annotate(sim, task("T-1"), APPROVE_IMPLEMENT, "alice")
    sim.run()

    assert implement_phase(sim) == "AwaitingApproval"
    assert runs_of(sim, task("T-1")) == [run("T-1")]


def test_the_same_approver_twice_counts_once() -> None:
    sim = gated()
    sim.run()

    annotate(sim, task("T-1"), APPROVE_IMPLEMENT, "alice,alice, alice ,")
    sim.run()

    assert implement_phase(sim) == "AwaitingApproval"
    assert task_phase(sim, task("T-1")) == "AwaitingApproval"


def test_approvals_given_before_the_run_ends_count_when_it_succeeds() -> None:
    sim = gated(approvals=1)
    sim.settle()
    assert run("T-1") in sim.runs

    annotate(sim, task("T-1"), APPROVE_IMPLEMENT, "carol")
    sim.run()

    assert started(sim, run("T-1", "test")) == 10
    assert batch_phase(sim) == "Succeeded"


def test_a_waiting_task_is_not_rerun_while_it_waits() -> None:
    sim = gated()
    sim.run()

    for _ in range(3):
        assert of_type(decide(sim.snapshot()), StartRun) == []


def test_tasks_that_do_not_wait_on_the_approval_go_on() -> None:
    sim = gated(tickets=[ticket("T-1"), ticket("T-2", "T-1"), ticket("T-3")])

    sim.run()

    assert task_phase(sim, task("T-1")) == task_phase(sim, task("T-3")) == "AwaitingApproval"
    assert task_phase(sim, task("T-2")) == "Pending"
    annotate(sim, task("T-1"), APPROVE_IMPLEMENT, "alice,bob")
    sim.run()
    assert task_phase(sim, task("T-1")) == "Succeeded"
    assert task_phase(sim, task("T-2")) == "AwaitingApproval"
    assert started(sim, run("T-2")) >= 20
