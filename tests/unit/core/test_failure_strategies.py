"""What happens when a stage has failed for good: the four failure strategies, and humans."""

from __future__ import annotations

from agentfleet.core.actions import Action, CancelRun, ClearAnnotation, RecordEvent, StartRun
from agentfleet.models.task import ACTION_ANNOTATION
from agentfleet.simulate import Simulation

from .fleet import (
    annotate,
    batch_phase,
    batch_reason,
    dev,
    ended,
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
    task_phases,
    ticket,
)

#   T-1 <- T-2 <- T-3        T-1 fails; T-2 and T-3 depend on it, T-4 and T-5 do not.
#   T-4 <- T-5
DIAMOND = [
    ticket("T-1"),
    ticket("T-2", "T-1"),
    ticket("T-3", "T-2"),
    ticket("T-4"),
    ticket("T-5", "T-4"),
]
TWO_STAGES = [stage("implement"), stage("test", "implement", agentType="QualityAssurance")]


def strategy(name: str, **flow: object) -> dict[str, object]:
    return {"failureStrategy": name, **flow}


# --- ContinueOthers ------------------------------------------------------------------------


def test_continue_others_fails_the_task_and_its_dependents_and_finishes_the_rest() -> None:
    sim = simulation(
        fleet(DIAMOND, flow=strategy("ContinueOthers"), parallelLimit=2),
        failing={run("T-1")},
    )

    sim.run()

    assert task_phases(sim) == {
        task("T-1"): "Failed",
        task("T-2"): "DependencyFailed",
        task("T-3"): "DependencyFailed",
        task("T-4"): "Succeeded",
        task("T-5"): "Succeeded",
    }
    assert runs_of(sim, task("T-2")) == runs_of(sim, task("T-3")) == []
    assert batch_phase(sim) == "Failed"
    assert batch_reason(sim) == "TasksFailed"
    status = sim.batches["b1"].status
    assert status is not None
    assert (status.counts.failed, status.counts.dependency_failed, status.counts.succeeded) == (
        1,
        2,
        2,
    )


def test_continue_others_is_the_default_strategy() -> None:
    sim = simulation(fleet(DIAMOND), failing={run("T-4")})

    sim.run()

    assert task_phase(sim, task("T-4")) == "Failed"
    assert task_phase(sim, task("T-5")) == "DependencyFailed"
    assert task_phase(sim, task("T-3")) == "Succeeded"


def test_a_failed_stage_stops_the_later_stages_of_its_task() -> None:
    sim = simulation(fleet(stages=TWO_STAGES, agents=[dev(), qa()]), failing={run("T-1")})

    sim.run()

    assert runs_of(sim, task("T-1")) == [run("T-1")]
    status = sim.tasks[task("T-1")].status
    assert status is not None
    assert [(s.name, s.phase) for s in status.stages] == [
        ("implement", "Failed"),
        ("test", "Pending"),
    ]


# --- AbortAll ------------------------------------------------------------------------------


def test_abort_all_cancels_every_running_run_and_fails_the_batch() -> None:
    sim = simulation(
        fleet(DIAMOND, flow=strategy("AbortAll"), parallelLimit=3),
        duration={task("T-1"): 10, "*": 100},
        failing={run("T-1")},
    )

    sim.run()

    assert batch_phase(sim) == "Failed"
    assert batch_reason(sim) == "AbortAll"
    assert task_phase(sim, task("T-1")) == "Failed"
    assert task_phase(sim, task("T-4")) == task_phase(sim, task("T-5")) == "Aborted"
    assert {task_phase(sim, task("T-2")), task_phase(sim, task("T-3"))} <= {
        "Aborted",
        "DependencyFailed",
    }
    # T-4 ran beside T-1 and was cut short when T-1 failed; nothing started afterwards.
    assert ended(sim, run("T-4")) == 10
    assert sim.runs[run("T-4")].observed.reason == "AbortAll"
    assert max(r.started for r in sim.runs.values()) < 10


def test_abort_all_aborts_every_other_unfinished_task_dependents_included() -> None:
    """The issue: AbortAll fails the batch, "other unfinished tasks Aborted"."""
    sim = simulation(
        fleet(DIAMOND, flow=strategy("AbortAll"), parallelLimit=3),
        duration={task("T-1"): 10, "*": 100},
        failing={run("T-1")},
    )

    sim.run()

    assert task_phase(sim, task("T-2")) == task_phase(sim, task("T-3")) == "Aborted"


def test_abort_all_emits_a_cancel_for_each_run_in_flight() -> None:
    sim = simulation(
        fleet(DIAMOND, flow=strategy("AbortAll"), parallelLimit=3),
        duration={task("T-1"): 10, "*": 100},
        failing={run("T-1")},
    )
    sim.settle()
    sim.clock = 10
    sim._end(sim.runs[run("T-1")], ok=False, reason="Error")

    actions = sim.step()

    assert {c.name for c in of_type(actions, CancelRun)} == {run("T-4")}
    assert of_type(actions, StartRun) == []


def test_abort_all_keeps_tasks_that_already_succeeded() -> None:
    sim = simulation(
        fleet(DIAMOND, flow=strategy("AbortAll"), parallelLimit=1, strategy="Sequential"),
        failing={run("T-3")},
    )

    sim.run()

    assert task_phase(sim, task("T-1")) == task_phase(sim, task("T-2")) == "Succeeded"
    assert task_phase(sim, task("T-3")) == "Failed"
    assert batch_phase(sim) == "Failed"
    assert all(r.observed.phase.finished for r in sim.runs.values())


def test_abort_all_keeps_a_task_whose_run_succeeded_at_the_instant_of_the_failure() -> None:
    """T-1 fails and T-2 succeeds at t=10, in the same snapshot; T-3 and T-4 still run."""
    tickets = [ticket("T-1"), ticket("T-2"), ticket("T-3"), ticket("T-4"), ticket("T-5", "T-2")]
    sim = simulation(
        fleet(tickets, flow=strategy("AbortAll"), parallelLimit=4),
        duration={task("T-1"): 10, task("T-2"): 10, "*": 100},
        failing={run("T-1")},
    )
    cancels: list[str] = []
    step = sim.step

    def recording_step() -> list[Action]:
        actions = step()
        cancels.extend(c.name for c in of_type(actions, CancelRun))
        return actions

    sim.step = recording_step  # type: ignore[method-assign]

    sim.run()

    assert task_phases(sim) == {
        task("T-1"): "Failed",
        task("T-2"): "Succeeded",
        task("T-3"): "Aborted",
        task("T-4"): "Aborted",
        task("T-5"): "Aborted",
    }
    assert sorted(cancels) == [run("T-3"), run("T-4")], "each running run cancelled once"
    assert ended(sim, run("T-3")) == ended(sim, run("T-4")) == 10
    assert runs_of(sim, task("T-5")) == []
    assert batch_phase(sim) == "Failed"
    assert batch_reason(sim) == "AbortAll"
    status = sim.batches["b1"].status
    assert status is not None
    assert (status.counts.succeeded, status.counts.failed, status.counts.aborted) == (1, 1, 3)


# --- retries and RetryWithDifferentAgent ---------------------------------------------------


def test_retry_with_different_agent_tries_each_agent_of_the_type_once_by_default() -> None:
    agents = [dev("dev-a"), dev("dev-b"), dev("dev-c"), qa()]
    sim = simulation(
        fleet(agents=agents, flow=strategy("RetryWithDifferentAgent")),
        failing={run("T-1", "implement", 1), run("T-1", "implement", 2)},
    )

    sim.run()

    attempts = runs_of(sim, task("T-1"))
    assert attempts == [run("T-1", "implement", n) for n in (1, 2, 3)]
    assert [sim.runs[n].request.agent for n in attempts] == ["dev-a", "dev-b", "dev-c"]
    assert task_phase(sim, task("T-1")) == "Succeeded"


def test_retry_with_different_agent_starts_with_the_assigned_agent() -> None:
    agents = [dev("dev-a"), dev("dev-b"), dev("dev-c")]
    sim = simulation(
        fleet(
            agents=agents,
            flow=strategy("RetryWithDifferentAgent"),
            agentAssignments={"Development": "dev-b"},
        ),
        failing=lambda r: True,
    )

    sim.run()

    assert [sim.runs[n].request.agent for n in runs_of(sim, task("T-1"))] == [
        "dev-b",
        "dev-a",
        "dev-c",
    ]


def test_retry_with_different_agent_then_fails_like_continue_others() -> None:
    agents = [dev("dev-a"), dev("dev-b")]
    sim = simulation(
        fleet(DIAMOND, agents=agents, flow=strategy("RetryWithDifferentAgent")),
        failing=lambda r: r.task == task("T-1"),
    )

    sim.run()

    assert [sim.runs[n].request.agent for n in runs_of(sim, task("T-1"))] == ["dev-a", "dev-b"]
    assert task_phase(sim, task("T-1")) == "Failed"
    assert task_phase(sim, task("T-2")) == task_phase(sim, task("T-3")) == "DependencyFailed"
    assert task_phase(sim, task("T-4")) == task_phase(sim, task("T-5")) == "Succeeded"
    assert batch_phase(sim) == "Failed"


def test_retry_with_different_agent_stops_at_max_retries() -> None:
    agents = [dev("dev-a"), dev("dev-b"), dev("dev-c")]
    sim = simulation(
        fleet(agents=agents, flow=strategy("RetryWithDifferentAgent", maxRetries=1)),
        failing=lambda r: True,
    )

    sim.run()

    assert [sim.runs[n].request.agent for n in runs_of(sim, task("T-1"))] == ["dev-a", "dev-b"]
    assert task_phase(sim, task("T-1")) == "Failed"


def test_retry_with_different_agent_never_reuses_an_agent_even_with_retries_left() -> None:
    sim = simulation(
        fleet(
            agents=[dev("dev-a"), dev("dev-b")],
            flow=strategy("RetryWithDifferentAgent", maxRetries=5),
        ),
        failing=lambda r: True,
    )

    sim.run()

    assert [sim.runs[n].request.agent for n in runs_of(sim, task("T-1"))] == ["dev-a", "dev-b"]
    assert task_phase(sim, task("T-1")) == "Failed"


def test_retries_of_one_stage_do_not_spend_another_stages_budget() -> None:
    sim = simulation(
        fleet(stages=TWO_STAGES, agents=[dev(), qa()], flow={"maxRetries": 1}),
        failing={run("T-1", "implement", 1), run("T-1", "test", 1)},
    )

    sim.run()

    assert runs_of(sim, task("T-1")) == [
        run("T-1", "implement", 1),
        run("T-1", "implement", 2),
        run("T-1", "test", 1),
        run("T-1", "test", 2),
    ]
    assert task_phase(sim, task("T-1")) == "Succeeded"


# --- EscalateToHuman -----------------------------------------------------------------------


def escalated_fleet() -> Simulation:
    return simulation(
        fleet(DIAMOND, flow=strategy("EscalateToHuman"), parallelLimit=2),
        failing={run("T-1", "implement", 1)},
    )


def test_escalate_to_human_parks_the_task_and_keeps_the_batch_processing() -> None:
    sim = escalated_fleet()

    sim.run()

    assert task_phases(sim) == {
        task("T-1"): "Escalated",
        task("T-2"): "Pending",
        task("T-3"): "Pending",
        task("T-4"): "Succeeded",
        task("T-5"): "Succeeded",
    }
    assert batch_phase(sim) == "Processing"
    assert batch_reason(sim) == "Escalated"
    assert not sim.finished()
    assert [r for r in sim.runs.values() if not r.observed.phase.finished] == []


def test_a_human_retry_runs_the_failed_stage_again_and_clears_the_annotation() -> None:
    sim = escalated_fleet()
    sim.run()
    escalated_at = sim.clock

    annotate(sim, task("T-1"), ACTION_ANNOTATION, "retry")
    actions = sim.step()

    assert ClearAnnotation("AgentTask", task("T-1"), ACTION_ANNOTATION) in actions
    assert [s.run.name for s in of_type(actions, StartRun)] == [run("T-1", "implement", 2)]
    sim.run()
    assert ACTION_ANNOTATION not in sim.tasks[task("T-1")].metadata.annotations
    assert started(sim, run("T-1", "implement", 2)) == escalated_at
    assert set(task_phases(sim).values()) == {"Succeeded"}
    assert batch_phase(sim) == "Succeeded"


def test_a_human_retry_gets_a_fresh_retry_budget() -> None:
    sim = simulation(
        fleet(flow=strategy("EscalateToHuman", maxRetries=1)),
        failing={run("T-1", "implement", n) for n in (1, 2, 3)},
    )
    sim.run()
    assert task_phase(sim, task("T-1")) == "Escalated"

    annotate(sim, task("T-1"), ACTION_ANNOTATION, "retry")
    sim.run()

    assert runs_of(sim, task("T-1")) == [run("T-1", "implement", n) for n in (1, 2, 3, 4)]
    assert task_phase(sim, task("T-1")) == "Succeeded"


def test_a_human_skip_lets_the_dependents_proceed() -> None:
    sim = escalated_fleet()
    sim.run()

    annotate(sim, task("T-1"), ACTION_ANNOTATION, "skip")
    sim.run()

    assert task_phase(sim, task("T-1")) == "Skipped"
    assert task_phase(sim, task("T-2")) == task_phase(sim, task("T-3")) == "Succeeded"
    assert batch_phase(sim) == "Succeeded"
    assert ACTION_ANNOTATION not in sim.tasks[task("T-1")].metadata.annotations


def test_a_human_abort_fails_the_task_and_its_dependents() -> None:
    sim = escalated_fleet()
    sim.run()

    annotate(sim, task("T-1"), ACTION_ANNOTATION, "abort")
    sim.run()

    assert task_phases(sim) == {
        task("T-1"): "Aborted",
        task("T-2"): "DependencyFailed",
        task("T-3"): "DependencyFailed",
        task("T-4"): "Succeeded",
        task("T-5"): "Succeeded",
    }
    assert batch_phase(sim) == "Failed"
    assert ACTION_ANNOTATION not in sim.tasks[task("T-1")].metadata.annotations


def test_a_human_skip_of_a_running_task_cancels_its_run() -> None:
    sim = simulation(fleet(DIAMOND, parallelLimit=1), duration=10)
    sim.settle()
    assert list(sim.runs) == [run("T-1")]

    annotate(sim, task("T-1"), ACTION_ANNOTATION, "skip")
    actions = sim.step()

    assert [(c.name, c.reason) for c in of_type(actions, CancelRun)] == [(run("T-1"), "Skipped")]
    sim.run()
    assert task_phase(sim, task("T-1")) == "Skipped"
    assert task_phase(sim, task("T-2")) == "Succeeded"
    assert batch_phase(sim) == "Succeeded"


def test_a_human_abort_of_a_running_task_cancels_its_run_and_fails_its_dependents() -> None:
    sim = simulation(fleet(DIAMOND, parallelLimit=1), duration=10)
    sim.settle()

    annotate(sim, task("T-1"), ACTION_ANNOTATION, "abort")
    actions = sim.step()

    assert [(c.name, c.reason) for c in of_type(actions, CancelRun)] == [(run("T-1"), "Aborted")]
    sim.run()
    assert task_phase(sim, task("T-1")) == "Aborted"
    assert task_phase(sim, task("T-3")) == "DependencyFailed"
    assert task_phase(sim, task("T-5")) == "Succeeded"
    assert batch_phase(sim) == "Failed"


def test_an_unknown_human_action_is_cleared_and_changes_nothing() -> None:
    sim = escalated_fleet()
    sim.run()

    annotate(sim, task("T-1"), ACTION_ANNOTATION, "please")
    actions = sim.step()

    assert ClearAnnotation("AgentTask", task("T-1"), ACTION_ANNOTATION) in actions
    assert task_phase(sim, task("T-1")) == "Escalated"
    assert of_type(actions, StartRun) == []
    warnings = [e for e in of_type(actions, RecordEvent) if e.reason == "ActionIgnored"]
    assert [(w.name, w.type) for w in warnings] == [(task("T-1"), "Warning")]
    assert "'please'" in warnings[0].message


def test_a_retry_of_a_running_task_is_ignored_with_a_warning() -> None:
    sim = simulation(fleet([ticket("T-1")]), duration=10.0)
    sim.settle()
    assert task_phase(sim, task("T-1")) == "Running"

    annotate(sim, task("T-1"), ACTION_ANNOTATION, "retry")
    actions = sim.step()

    assert ClearAnnotation("AgentTask", task("T-1"), ACTION_ANNOTATION) in actions
    assert [e.reason for e in of_type(actions, RecordEvent)] == ["ActionIgnored"]
    assert of_type(actions, StartRun) == []
    sim.run()
    assert runs_of(sim, task("T-1")) == [run("T-1")]


def test_a_human_retry_of_a_failed_task_reopens_the_finished_batch() -> None:
    sim = simulation(fleet(DIAMOND), failing={run("T-1", "implement", 1)})
    sim.run()
    assert batch_phase(sim) == "Failed"

    annotate(sim, task("T-1"), ACTION_ANNOTATION, "retry")
    sim.run()

    assert set(task_phases(sim).values()) == {"Succeeded"}
    assert batch_phase(sim) == "Succeeded"
    assert started(sim, run("T-2")) >= ended(sim, run("T-1", "implement", 2))
