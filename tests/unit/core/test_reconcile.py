"""decide(): a batch's life, stage progression, timeouts, determinism and restart safety.

Failure strategies, approvals, scheduling and refinement have their own modules.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import replace
from typing import Any

import pytest

from agentfleet.core.actions import (
    CancelRun,
    ClearAnnotation,
    CreateTask,
    RecordEvent,
    RunRequest,
    SetStatus,
    StartRun,
)
from agentfleet.core.reconcile import decide
from agentfleet.models.meta import Resource
from agentfleet.models.run import AttemptPhase, RunKind
from agentfleet.models.task import ACTION_ANNOTATION
from agentfleet.simulate import Simulation

from ..models import manifests as m
from .fleet import (
    annotate,
    batch_phase,
    batch_reason,
    build,
    dev,
    docs_agent,
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

THREE_STAGES = [
    stage("implement"),
    stage("test", "implement", agentType="QualityAssurance"),
    stage("document", "implement", agentType="Documentation"),
]
THREE_AGENTS = [dev(), qa(), docs_agent()]


def first_start(sim: Simulation) -> RunRequest:
    """Step until decide() asks for a run (the first call only creates the tasks)."""
    for _ in range(5):
        starts = of_type(sim.step(), StartRun)
        if starts:
            assert len(starts) == 1, starts
            return starts[0].run
    raise AssertionError("no run was started")


# --- a batch's life ------------------------------------------------------------------------


def test_first_decide_creates_one_task_per_ticket_and_moves_the_batch_to_processing() -> None:
    sim = simulation(fleet([ticket("T-1"), ticket("T-2", "T-1")]))

    actions = decide(sim.snapshot())

    created = {a.task.name: a.task for a in of_type(actions, CreateTask)}
    assert sorted(created) == ["b1-t-1", "b1-t-2"]
    assert created["b1-t-2"].spec.dependencies == ["b1-t-1"]
    assert created["b1-t-1"].spec.branch == "agentfleet/b1/b1-t-1"
    assert created["b1-t-1"].spec.batch_ref is not None
    assert created["b1-t-1"].spec.batch_ref.name == "b1"
    batch_status = [a.status for a in of_type(actions, SetStatus) if a.kind == "TicketBatch"]
    assert [s.phase for s in batch_status] == ["Processing"]
    assert [(e.id, e.task) for e in batch_status[0].tickets] == [
        ("T-1", "b1-t-1"),
        ("T-2", "b1-t-2"),
    ]


def test_first_decide_asks_for_each_task_once() -> None:
    sim = simulation(fleet([ticket("T-1"), ticket("T-2", "T-1")]))

    actions = decide(sim.snapshot())

    assert [a.task.name for a in of_type(actions, CreateTask)] == ["b1-t-1", "b1-t-2"]


def test_a_batch_whose_tasks_all_succeed_succeeds() -> None:
    sim = simulation(fleet([ticket("T-1"), ticket("T-2", "T-1"), ticket("T-3")]))

    sim.run()

    assert batch_phase(sim) == "Succeeded"
    assert set(task_phases(sim).values()) == {"Succeeded"}
    status = sim.batches["b1"].status
    assert status is not None
    assert status.counts.succeeded == status.counts.total == 3
    assert status.progress == "3/3"
    assert [e.phase for e in status.tickets] == ["Succeeded"] * 3
    assert status.completion_time is not None


@pytest.mark.parametrize(
    ("docs", "reason"),
    [
        pytest.param(
            [dev(), m.workflow("flow"), m.batch(workflowRef={"name": "flow"})],
            "ProjectNotFound",
            id="project",
        ),
        pytest.param(
            [m.project(), dev(), m.batch(workflowRef={"name": "flow"})],
            "WorkflowNotFound",
            id="workflow",
        ),
        pytest.param(
            [m.project(), dev(), m.workflow("flow"), m.batch()],
            "WorkflowNotSet",
            id="no-workflow-named",
        ),
        pytest.param(
            [m.project(), qa(), m.workflow("flow"), m.batch(workflowRef={"name": "flow"})],
            "AgentNotFound",
            id="agent-of-type",
        ),
        pytest.param(
            [
                m.project(),
                dev(),
                m.workflow("flow", [stage("implement", agentType=None, agentRef={"name": "x"})]),
                m.batch(workflowRef={"name": "flow"}),
            ],
            "AgentNotFound",
            id="agent-ref",
        ),
        pytest.param(
            [
                m.project(),
                dev(),
                m.workflow("flow"),
                m.batch(workflowRef={"name": "flow"}, agentAssignments={"Development": "ghost"}),
            ],
            "AgentNotFound",
            id="assigned-agent",
        ),
    ],
)
def test_a_batch_with_a_missing_reference_stays_pending_and_says_why(
    docs: list[dict[str, object]], reason: str
) -> None:
    sim = simulation([build(d) for d in docs])

    sim.run()

    assert batch_phase(sim) == "Pending"
    assert batch_reason(sim) == reason
    assert sim.tasks == {}
    assert sim.runs == {}


def test_the_project_default_workflow_is_used_when_the_batch_names_none() -> None:
    sim = simulation(
        [
            build(m.project(defaultWorkflowRef={"name": "flow"})),
            build(dev()),
            build(m.workflow("flow")),
            build(m.batch()),
        ]
    )

    sim.run()

    assert batch_phase(sim) == "Succeeded"


def test_a_reference_that_arrives_later_lets_the_pending_batch_start() -> None:
    resources = fleet()
    project = next(r for r in resources if r.kind == "Project")
    sim = simulation([r for r in resources if r.kind != "Project"])
    sim.settle()
    assert batch_reason(sim) == "ProjectNotFound"

    sim.projects[project.name] = project  # type: ignore[assignment]
    sim.run()

    assert batch_phase(sim) == "Succeeded"


def test_execute_false_creates_the_tasks_but_stops_at_refined() -> None:
    sim = simulation(fleet([ticket("T-1"), ticket("T-2")], execute=False))

    sim.run()

    assert batch_phase(sim) == "Refined"
    assert sorted(sim.tasks) == ["b1-t-1", "b1-t-2"]
    assert sim.runs == {}


def test_an_abort_annotation_on_the_batch_cancels_its_runs_and_fails_it() -> None:
    sim = simulation(fleet([ticket("T-1"), ticket("T-2"), ticket("T-3", "T-1")]))
    sim.settle()
    running = sorted(n for n, r in sim.runs.items() if not r.observed.phase.finished)
    assert running == [run("T-1"), run("T-2")]

    annotate(sim, "b1", ACTION_ANNOTATION, "abort", kind="TicketBatch")
    actions = sim.step()

    assert sorted({a.name for a in of_type(actions, CancelRun)}) == running
    assert ClearAnnotation("TicketBatch", "b1", ACTION_ANNOTATION) in actions
    assert ACTION_ANNOTATION not in sim.batches["b1"].metadata.annotations
    sim.run()
    assert batch_phase(sim) == "Failed"
    assert batch_reason(sim) == "Aborted"
    assert task_phases(sim) == {"b1-t-1": "Aborted", "b1-t-2": "Aborted", "b1-t-3": "Aborted"}
    assert sorted(sim.runs) == running, "nothing starts after the abort"


def test_a_batch_abort_cancels_each_run_once() -> None:
    sim = simulation(fleet([ticket("T-1"), ticket("T-2")]))
    sim.settle()

    annotate(sim, "b1", ACTION_ANNOTATION, "abort", kind="TicketBatch")
    cancels = [a.name for a in of_type(sim.step(), CancelRun)]

    assert sorted(cancels) == [run("T-1"), run("T-2")]


@pytest.mark.parametrize("value", ["Abort", "ABORT", " abort "])
def test_the_batch_action_annotation_is_read_case_insensitively(value: str) -> None:
    sim = simulation(fleet([ticket("T-1"), ticket("T-2")]))
    sim.settle()

    annotate(sim, "b1", ACTION_ANNOTATION, value, kind="TicketBatch")
    actions = sim.step()

    assert ClearAnnotation("TicketBatch", "b1", ACTION_ANNOTATION) in actions
    assert sorted(c.name for c in of_type(actions, CancelRun)) == [run("T-1"), run("T-2")]
    assert batch_phase(sim) == "Failed"
    assert batch_reason(sim) == "Aborted"


def test_an_unknown_batch_action_is_cleared_with_a_warning_and_aborts_nothing() -> None:
    sim = simulation(fleet([ticket("T-1"), ticket("T-2")]))
    sim.settle()

    annotate(sim, "b1", ACTION_ANNOTATION, "retry", kind="TicketBatch")
    actions = sim.step()

    assert ClearAnnotation("TicketBatch", "b1", ACTION_ANNOTATION) in actions
    warnings = [
        e
        for e in of_type(actions, RecordEvent)
        if (e.kind, e.name, e.type, e.reason) == ("TicketBatch", "b1", "Warning", "UnknownAction")
    ]
    assert len(warnings) == 1
    assert "retry" in warnings[0].message
    assert of_type(actions, CancelRun) == []
    assert ACTION_ANNOTATION not in sim.batches["b1"].metadata.annotations
    assert batch_phase(sim) == "Processing"
    sim.run()
    assert batch_phase(sim) == "Succeeded"
    assert set(task_phases(sim).values()) == {"Succeeded"}


@pytest.mark.parametrize("value", ["abort", "retry"])
def test_an_action_annotation_on_a_finished_batch_is_cleared_and_changes_nothing(
    value: str,
) -> None:
    sim = simulation(fleet([ticket("T-1")]))
    sim.run()
    assert batch_phase(sim) == "Succeeded"

    annotate(sim, "b1", ACTION_ANNOTATION, value, kind="TicketBatch")
    actions = sim.step()

    assert ClearAnnotation("TicketBatch", "b1", ACTION_ANNOTATION) in actions
    assert of_type(actions, CancelRun) == of_type(actions, StartRun) == []
    assert ACTION_ANNOTATION not in sim.batches["b1"].metadata.annotations
    assert batch_phase(sim) == "Succeeded"
    assert task_phase(sim, task("T-1")) == "Succeeded"
    assert decide(sim.snapshot()) == []


def test_a_finished_batch_asks_for_nothing_more() -> None:
    sim = simulation(fleet([ticket("T-1"), ticket("T-2", "T-1")]))
    sim.run()

    assert decide(sim.snapshot()) == []


# --- task names ----------------------------------------------------------------------------


def colliding_batches(first: str, second: str) -> tuple[Simulation, Resource[Any, Any]]:
    """Batch `a-b` with ticket `c` and batch `a` with ticket `b-c` both make task `a-b-c`.

    `first` is in the simulation and planned; `second` is returned, for the test to add.
    """
    ticket_of = {"a-b": "c", "a": "b-c"}
    other = build(m.batch(second, [ticket(ticket_of[second])], workflowRef={"name": "flow"}))
    sim = simulation(fleet([ticket(ticket_of[first])], batch=first))
    sim.settle()
    return sim, other


@pytest.mark.parametrize(("first", "second"), [("a-b", "a"), ("a", "a-b")])
def test_a_batch_whose_task_name_another_batch_owns_fails_with_task_name_conflict(
    first: str, second: str
) -> None:
    sim, other = colliding_batches(first, second)
    assert task("c", "a-b") == task("b-c", "a") == "a-b-c"
    assert list(sim.tasks) == ["a-b-c"]
    owned = sim.tasks["a-b-c"]

    sim.batches[second] = other  # type: ignore[assignment]
    actions = sim.step()

    assert of_type(actions, CreateTask) == []
    assert [a for a in of_type(actions, SetStatus) if a.kind == "AgentTask"] == []
    assert batch_phase(sim, second) == "Failed"
    assert batch_reason(sim, second) == "TaskNameConflict"
    status = sim.batches[second].status
    assert status is not None
    condition = status.condition("Succeeded")
    assert condition is not None
    assert "a-b-c" in condition.message
    assert sim.tasks["a-b-c"] == owned, "the first batch's task is untouched"
    sim.run()
    assert batch_phase(sim, first) == "Succeeded"
    assert batch_phase(sim, second) == "Failed"
    batch_ref = sim.tasks["a-b-c"].spec.batch_ref
    assert batch_ref is not None
    assert batch_ref.name == first


def test_of_two_colliding_batches_planned_in_one_call_the_later_created_one_conflicts() -> None:
    """decide() plans batches oldest first: the younger one must see the older one's task."""
    older = m.batch("a-b", [ticket("c")], workflowRef={"name": "flow"})
    older["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    younger = m.batch("a", [ticket("b-c")], workflowRef={"name": "flow"})
    younger["metadata"]["creationTimestamp"] = "2026-01-01T00:00:01Z"
    sim = simulation([build(d) for d in (m.project(), dev(), m.workflow("flow"), older, younger)])

    actions = decide(sim.snapshot())

    created = of_type(actions, CreateTask)
    assert [(c.task.name, c.task.spec.batch_ref.name) for c in created] == [("a-b-c", "a-b")]
    for action in actions:
        sim.apply(action)
    assert batch_phase(sim, "a") == "Failed"
    assert batch_reason(sim, "a") == "TaskNameConflict"
    sim.run()
    assert batch_phase(sim, "a-b") == "Succeeded"


# --- stages --------------------------------------------------------------------------------


def test_runs_are_named_task_stage_attempt_and_carry_what_a_driver_needs() -> None:
    sim = simulation(fleet(stages=THREE_STAGES, agents=THREE_AGENTS))

    request = first_start(sim)

    assert request.name == "b1-t-1-implement-1"
    assert (request.kind, request.batch, request.task, request.stage, request.attempt) == (
        RunKind.STAGE,
        "b1",
        "b1-t-1",
        "implement",
        1,
    )
    assert (request.agent, request.project) == ("dev", "demo")


def test_stages_run_after_the_stages_they_depend_on() -> None:
    stages = [
        stage("implement"),
        stage("test", "implement", agentType="QualityAssurance"),
        stage("review", "test", agentType="QualityAssurance"),
    ]
    sim = simulation(fleet(stages=stages, agents=[dev(), qa()]), duration=10)

    sim.run()

    t1 = task("T-1")
    assert runs_of(sim, t1) == [run("T-1", s) for s in ("implement", "test", "review")]
    assert started(sim, run("T-1", "test")) == ended(sim, run("T-1", "implement")) == 10
    assert started(sim, run("T-1", "review")) == ended(sim, run("T-1", "test")) == 20
    assert task_phase(sim, t1) == "Succeeded"


def test_with_parallel_execution_independent_stages_run_side_by_side() -> None:
    sim = simulation(
        fleet(stages=THREE_STAGES, agents=THREE_AGENTS, flow={"parallelExecution": True}),
        duration=10,
    )

    sim.run()

    assert started(sim, run("T-1", "test")) == started(sim, run("T-1", "document")) == 10
    assert task_phase(sim, task("T-1")) == "Succeeded"


def test_without_parallel_execution_a_task_runs_one_stage_at_a_time() -> None:
    sim = simulation(
        fleet(stages=THREE_STAGES, agents=THREE_AGENTS, flow={"parallelExecution": False}),
        duration=10,
    )

    sim.run()

    assert runs_of(sim, task("T-1")) == [run("T-1", s) for s in ("implement", "test", "document")]
    assert started(sim, run("T-1", "document")) == ended(sim, run("T-1", "test")) == 20


def test_a_task_starts_only_once_every_task_it_depends_on_has_succeeded() -> None:
    stages = [stage("implement"), stage("test", "implement", agentType="QualityAssurance")]
    tickets = [ticket("T-1"), ticket("T-2"), ticket("T-3", "T-1", "T-2")]
    sim = simulation(
        fleet(tickets, stages=stages, agents=[dev(), qa()]),
        duration={task("T-1"): 10, task("T-2"): 30},
    )

    sim.run()

    first = started(sim, run("T-3"))
    assert first == ended(sim, run("T-2", "test")) == 60
    assert first >= ended(sim, run("T-1", "test"))


def test_a_failed_stage_is_retried_on_the_same_agent_up_to_max_retries() -> None:
    failing = {run("T-1", "implement", 1), run("T-1", "implement", 2)}
    sim = simulation(fleet(agents=[dev(), dev("dev-2")], flow={"maxRetries": 2}), failing=failing)

    sim.run()

    assert runs_of(sim, task("T-1")) == [run("T-1", "implement", n) for n in (1, 2, 3)]
    assert {sim.runs[n].request.agent for n in runs_of(sim, task("T-1"))} == {"dev"}
    assert task_phase(sim, task("T-1")) == "Succeeded"
    assert batch_phase(sim) == "Succeeded"


def test_without_max_retries_a_failed_stage_is_not_retried() -> None:
    sim = simulation(fleet(), failing={run("T-1")})

    sim.run()

    assert list(sim.runs) == [run("T-1")]
    assert task_phase(sim, task("T-1")) == "Failed"
    assert batch_phase(sim) == "Failed"


def test_each_attempt_is_recorded_with_its_run_agent_and_reason() -> None:
    sim = simulation(fleet(flow={"maxRetries": 1}), failing={run("T-1", "implement", 1)})

    sim.run()

    status = sim.tasks[task("T-1")].status
    assert status is not None
    implement = status.stage("implement")
    assert implement is not None
    assert [(a.attempt, a.run_name, a.agent, a.phase, a.reason) for a in implement.attempts] == [
        (1, run("T-1", "implement", 1), "dev", AttemptPhase.FAILED, "Error"),
        (2, run("T-1", "implement", 2), "dev", AttemptPhase.SUCCEEDED, "Succeeded"),
    ]
    assert status.progress == "1/1"


# --- timeouts ------------------------------------------------------------------------------


def test_a_run_past_the_stage_timeout_is_cancelled_and_its_attempt_fails() -> None:
    sim = simulation(fleet(stages=[stage("implement", timeoutMinutes=2)]), duration=10_000)
    sim.settle()

    sim.clock = 119
    assert of_type(sim.step(), CancelRun) == []

    sim.clock = 120
    actions = sim.step()

    assert [(c.name, c.reason) for c in of_type(actions, CancelRun)] == [
        (run("T-1"), "DeadlineExceeded")
    ]
    sim.settle()
    status = sim.tasks[task("T-1")].status
    assert status is not None
    implement = status.stage("implement")
    assert implement is not None
    assert [(a.phase, a.reason) for a in implement.attempts] == [
        (AttemptPhase.FAILED, "DeadlineExceeded")
    ]
    assert task_phase(sim, task("T-1")) == "Failed"
    assert batch_phase(sim) == "Failed"


def test_the_agent_timeout_applies_when_the_stage_sets_none() -> None:
    sim = simulation(fleet(agents=[dev(timeoutSeconds=30)]), duration=10_000)
    assert first_start(sim).timeout_seconds == 30

    sim.clock = 30
    actions = sim.step()

    assert [c.reason for c in of_type(actions, CancelRun)] == ["DeadlineExceeded"]


def test_the_stage_timeout_wins_over_the_agent_timeout() -> None:
    sim = simulation(
        fleet(stages=[stage("implement", timeoutMinutes=1)], agents=[dev(timeoutSeconds=30)]),
        duration=10_000,
    )

    assert first_start(sim).timeout_seconds == 60


def test_a_timed_out_attempt_is_retried_within_max_retries() -> None:
    sim = simulation(
        fleet(stages=[stage("implement", timeoutMinutes=1)], flow={"maxRetries": 1}),
        duration={run("T-1", "implement", 1): 10_000, "*": 10},
    )
    sim.settle()
    sim.clock = 60
    sim.run()

    assert runs_of(sim, task("T-1")) == [run("T-1", "implement", 1), run("T-1", "implement", 2)]
    assert sim.runs[run("T-1", "implement", 1)].observed.reason == "DeadlineExceeded"
    assert task_phase(sim, task("T-1")) == "Succeeded"


# --- determinism and restart safety --------------------------------------------------------


def test_decide_returns_the_same_actions_for_the_same_snapshot() -> None:
    tickets = [ticket("T-1"), ticket("T-2", "T-1"), ticket("T-3"), ticket("T-4", "T-3")]
    sim = simulation(
        fleet(tickets, stages=THREE_STAGES, agents=THREE_AGENTS, flow={"parallelExecution": True}),
        duration={task("T-1"): 10, "*": 25},
        failing={run("T-3", "test")},
    )
    for _ in range(6):
        snapshot = sim.snapshot()
        untouched = deepcopy(snapshot)
        first = decide(snapshot)
        assert decide(snapshot) == first
        assert decide(untouched) == first
        assert snapshot == untouched, "decide() must not change its snapshot"
        for action in first:
            sim.apply(action)
        running = [r for r in sim.runs.values() if not r.observed.phase.finished]
        if running:
            sim.clock = min(r.finishes for r in running)
            for r in running:
                if r.finishes <= sim.clock:
                    sim._end(r, ok=r.succeeds, reason="Succeeded" if r.succeeds else "Error")


def test_a_started_run_the_driver_has_not_created_yet_is_asked_for_again() -> None:
    sim = simulation(fleet())
    sim.step()  # creates the task
    first = decide(sim.snapshot())
    for action in first:
        if not isinstance(action, StartRun):
            sim.apply(action)
    assert sim.runs == {}

    again = decide(sim.snapshot())

    assert [a.run.name for a in of_type(first, StartRun)] == [run("T-1")]
    assert of_type(again, StartRun) == of_type(first, StartRun)
    task_status = [a for a in of_type(again, SetStatus) if a.kind == "AgentTask"]
    assert task_status == [], "re-asking for the run records no new attempt"


def test_a_run_the_status_does_not_record_is_adopted_as_the_first_attempt() -> None:
    """The driver crashed after creating the run and before writing the task's status."""
    sim = simulation(fleet())
    sim.step()  # creates the task
    for action in decide(sim.snapshot()):
        if not (isinstance(action, SetStatus) and action.kind == "AgentTask"):
            sim.apply(action)
    assert sim.tasks[task("T-1")].status is None
    assert list(sim.runs) == [run("T-1")]

    actions = sim.step()

    assert of_type(actions, StartRun) == []
    assert of_type(actions, CancelRun) == []
    status = sim.tasks[task("T-1")].status
    assert status is not None
    assert status.phase == "Running"
    implement = status.stage("implement")
    assert implement is not None
    assert [a.run_name for a in implement.attempts] == [run("T-1")]
    sim.run()
    assert list(sim.runs) == [run("T-1")]
    assert batch_phase(sim) == "Succeeded"


def test_a_retry_run_the_status_does_not_record_is_adopted_not_cancelled() -> None:
    """The crash comes in the decide() that saw attempt 1 fail and started attempt 2."""
    sim = simulation(fleet(flow={"maxRetries": 1}), failing={run("T-1", "implement", 1)})
    sim.settle()
    first = run("T-1", "implement", 1)
    sim.clock = sim.runs[first].finishes
    sim._end(sim.runs[first], ok=False, reason="Error")
    for action in decide(sim.snapshot()):
        if not (isinstance(action, SetStatus) and action.kind == "AgentTask"):
            sim.apply(action)
    second = run("T-1", "implement", 2)
    assert second in sim.runs

    actions = sim.step()

    assert second not in [c.name for c in of_type(actions, CancelRun)]
    sim.run()
    assert sim.runs[second].observed.reason == "Succeeded"
    assert task_phase(sim, task("T-1")) == "Succeeded"


def test_a_run_that_no_attempt_can_explain_is_cancelled_as_orphaned() -> None:
    sim = simulation(fleet())
    sim.settle()
    stray = sim.runs[run("T-1")].request
    sim._start(replace(stray, name=run("T-1", "implement", 7), attempt=7))

    actions = sim.step()

    assert [(c.name, c.reason) for c in of_type(actions, CancelRun)] == [
        (run("T-1", "implement", 7), "Orphaned")
    ]


def test_applying_every_action_twice_changes_nothing() -> None:
    once = simulation(fleet([ticket("T-1"), ticket("T-2", "T-1")]), duration=10)
    twice = simulation(fleet([ticket("T-1"), ticket("T-2", "T-1")]), duration=10)

    def step_twice() -> list[object]:
        actions = decide(twice.snapshot())
        for action in [*actions, *actions]:
            twice.apply(action)
        return list(actions)

    twice.step = step_twice  # type: ignore[method-assign]
    once.run()
    twice.run()

    assert {n: (r.started, r.finishes) for n, r in twice.runs.items()} == {
        n: (r.started, r.finishes) for n, r in once.runs.items()
    }
    assert task_phases(twice) == task_phases(once)
    assert batch_phase(twice) == batch_phase(once) == "Succeeded"
