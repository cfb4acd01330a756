"""Edges found in review: missing or cyclic task dependencies, lost runs, gone agents."""

from __future__ import annotations

from agentfleet.core.actions import CancelRun, ClearAnnotation, RecordEvent, SetStatus, StartRun
from agentfleet.core.reconcile import decide
from agentfleet.models.run import RunPhase
from agentfleet.models.task import ACTION_ANNOTATION, AgentTask

from .fleet import (
    annotate,
    batch_phase,
    batch_reason,
    batch_summary,
    build,
    dev,
    fleet,
    of_type,
    run,
    simulation,
    stage,
    task,
    task_phase,
    ticket,
)


def test_a_task_whose_dependency_is_missing_from_the_snapshot_does_not_start() -> None:
    sim = simulation(fleet([ticket("a"), ticket("b", "a")]), duration=10.0)
    sim.settle()
    del sim.tasks[task("a")]  # lost, or not yet seen by the driver's cache

    actions = decide(sim.snapshot())

    assert run("b") not in [a.run.name for a in of_type(actions, StartRun)]


def test_a_dependency_cycle_edited_into_tasks_fails_the_batch_naming_the_cycle() -> None:
    sim = simulation(fleet([ticket("a"), ticket("b", "a")]), duration=10.0)
    sim.settle()
    a = sim.tasks[task("a")]
    spec = a.spec.model_copy(update={"dependencies": [task("b")]})
    sim.tasks[task("a")] = a.model_copy(update={"spec": spec})

    sim.settle()

    assert batch_phase(sim) == "Failed"
    assert batch_reason(sim) == "DependencyCycle"
    assert f"{task('a')} -> {task('b')} -> {task('a')}" in batch_summary(sim).message


def test_a_run_the_driver_never_created_still_times_out() -> None:
    sim = simulation(
        fleet([ticket("a")], stages=[stage("implement", timeoutMinutes=1)]), duration=10.0
    )
    actions = sim.step()
    actions = sim.step()
    assert [a.run.name for a in of_type(actions, StartRun)] == [run("a")]
    del sim.runs[run("a")]  # the Pod or process never came to be
    sim.clock = 61.0

    actions = decide(sim.snapshot())

    assert [(c.name, c.reason) for c in of_type(actions, CancelRun)] == [
        (run("a"), "DeadlineExceeded")
    ]
    statuses = [a.status for a in of_type(actions, SetStatus) if a.name == task("a")]
    attempt = statuses[0].stages[0].attempts[0]
    assert (attempt.phase, attempt.reason) == ("Failed", "DeadlineExceeded")


def test_a_retry_goes_to_an_agent_that_still_exists_when_the_first_one_is_gone() -> None:
    sim = simulation(
        fleet([ticket("a")], agents=[dev("dev")], flow={"maxRetries": 2}),
        failing={run("a", "implement", 1)},
        duration=10.0,
    )
    sim.settle()
    del sim.agents["dev"]
    sim.agents["dev2"] = build(dev("dev2"))  # type: ignore[assignment]
    sim.clock = 10.0
    sim.runs[run("a")].observed = sim.runs[run("a")].observed.model_copy(
        update={"phase": RunPhase.FAILED, "finish_time": sim.now}
    )

    actions = decide(sim.snapshot())

    starts = [a.run for a in of_type(actions, StartRun)]
    assert [(r.name, r.agent) for r in starts] == [(run("a", "implement", 2), "dev2")]


def test_a_task_made_by_hand_in_a_batch_counts_towards_the_batch_outcome() -> None:
    extra = {
        "apiVersion": "agentfleet.dev/v1alpha1",
        "kind": "AgentTask",
        "metadata": {"name": "by-hand"},
        "spec": {"title": "made by hand", "batchRef": {"name": "b1"}},
    }
    sim = simulation(fleet([ticket("a")]), failing={"by-hand-implement-1"}, duration=10.0)
    sim.tasks["by-hand"] = AgentTask.model_validate(extra)

    sim.run()

    assert task_phase(sim, "by-hand") == "Failed"
    assert batch_phase(sim) == "Failed"
    status = sim.batches["b1"].status
    assert status is not None
    assert (status.counts.total, status.counts.succeeded, status.counts.failed) == (2, 1, 1)


def test_a_human_retry_does_not_run_a_task_whose_dependency_failed() -> None:
    sim = simulation(
        fleet([ticket("a"), ticket("b", "a")], flow={"failureStrategy": "AbortAll"}),
        failing={run("a")},
        duration=10.0,
    )
    sim.run()
    assert task_phase(sim, task("b")) == "Aborted"

    annotate(sim, task("b"), ACTION_ANNOTATION, "retry")
    sim.settle()

    assert task_phase(sim, task("b")) == "DependencyFailed"
    assert run("b") not in sim.runs


def test_a_task_action_that_cannot_reopen_a_finished_batch_is_cleared_with_a_warning() -> None:
    sim = simulation(fleet([ticket("a"), ticket("b", "a")]), failing={run("a")}, duration=10.0)
    sim.run()
    assert task_phase(sim, task("b")) == "DependencyFailed"

    annotate(sim, task("b"), ACTION_ANNOTATION, "retry")
    actions = sim.step()

    assert ClearAnnotation("AgentTask", task("b"), ACTION_ANNOTATION) in actions
    warnings = [e for e in of_type(actions, RecordEvent) if e.reason == "ActionIgnored"]
    assert [(w.name, w.type) for w in warnings] == [(task("b"), "Warning")]
    assert batch_phase(sim) == "Failed"
    assert ACTION_ANNOTATION not in sim.tasks[task("b")].metadata.annotations


def test_a_batch_whose_tickets_and_stages_would_share_run_names_is_refused() -> None:
    sim = simulation(
        fleet([ticket("x"), ticket("x-qa")], stages=[stage("qa-review"), stage("review")]),
        duration=10.0,
    )

    sim.settle()

    assert batch_phase(sim) == "Failed"
    assert batch_reason(sim) == "RunNameConflict"
    assert "ticket x stage qa-review and ticket x-qa stage review" in batch_summary(sim).message
    assert sim.tasks == {}
    assert sim.runs == {}
