"""AgentTask: a refined ticket, its stage record, and the annotations humans act through."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentfleet.models.meta import AgentType, Priority
from agentfleet.models.task import (
    ACTION_ANNOTATION,
    APPROVE_ANNOTATION_PREFIX,
    AgentTask,
    AgentTaskStatus,
    HumanAction,
    StagePhase,
    StageStatus,
    TaskPhase,
)

from .manifests import error_locs, task


def approved(stage: str, value: str) -> AgentTask:
    return AgentTask.model_validate(task(annotations={APPROVE_ANNOTATION_PREFIX + stage: value}))


def with_action(value: str) -> AgentTask:
    return AgentTask.model_validate(task(annotations={ACTION_ANNOTATION: value}))


def test_annotation_keys_are_in_the_agentfleet_group():
    assert APPROVE_ANNOTATION_PREFIX == "agentfleet.dev/approve-"
    assert ACTION_ANNOTATION == "agentfleet.dev/action"


def test_agent_task_parses_camel_case_into_snake_case():
    doc = task(
        batchRef={"name": "b1"},
        ticketId="T-1",
        description="Longer text",
        acceptanceCriteria=["it works"],
        complexity=4,
        priority="high",
        dependencies=["b1-t-0"],
        branch="agentfleet/b1/b1-t-1",
        workflowRef={"name": "flow"},
        agentAssignments={"Development": "dev"},
        order=2,
    )
    spec = AgentTask.model_validate(doc).spec
    assert spec.batch_ref is not None
    assert spec.batch_ref.name == "b1"
    assert spec.ticket_id == "T-1"
    assert spec.acceptance_criteria == ["it works"]
    assert spec.complexity == 4
    assert spec.priority is Priority.HIGH
    assert spec.dependencies == ["b1-t-0"]
    assert spec.agent_assignments == {AgentType.DEVELOPMENT: "dev"}
    assert spec.order == 2


def test_agent_task_defaults():
    spec = AgentTask.model_validate(task()).spec
    assert spec.batch_ref is None
    assert spec.project_ref is None
    assert spec.priority is Priority.MEDIUM
    assert spec.complexity is None
    assert spec.dependencies == []
    assert spec.order == 0


def test_agent_task_round_trips_with_its_stage_record():
    doc = task(batchRef={"name": "b1"}, ticketId="T-1", complexity=2)
    doc["status"] = {
        "phase": "Running",
        "stages": [
            {
                "name": "implement",
                "phase": "Succeeded",
                "retryFrom": 1,
                "approvals": ["alice"],
                "attempts": [
                    {
                        "attempt": 1,
                        "agent": "dev",
                        "runName": "b1-t-1-implement-1",
                        "phase": "Succeeded",
                        "exitCode": 0,
                        "criteria": [{"type": "tests_pass", "passed": True}],
                        "costUsd": 0.12,
                        "startTime": "2024-05-01T12:00:00Z",
                    }
                ],
            }
        ],
        "wave": 1,
        "tokens": 1200,
        "costUsd": 0.12,
    }
    loaded = AgentTask.model_validate(doc)
    assert loaded.status is not None
    implement = loaded.status.stage("implement")
    assert implement is not None
    assert implement.phase is StagePhase.SUCCEEDED
    assert implement.attempts[0].run_name == "b1-t-1-implement-1"
    wire = loaded.to_wire()
    assert wire["spec"]["batchRef"] == {"name": "b1"}
    assert wire["status"]["stages"][0]["retryFrom"] == 1
    assert wire["status"]["stages"][0]["attempts"][0]["exitCode"] == 0
    assert wire["status"]["costUsd"] == 0.12
    assert AgentTask.model_validate(wire) == loaded


def test_task_needs_a_non_empty_title():
    doc = task()
    doc["spec"]["title"] = ""
    with pytest.raises(ValidationError) as info:
        AgentTask.model_validate(doc)
    assert ("spec", "title") in error_locs(info.value)


@pytest.mark.parametrize("value", [0, 11])
def test_task_complexity_outside_one_to_ten_is_refused(value):
    with pytest.raises(ValidationError) as info:
        AgentTask.model_validate(task(complexity=value))
    assert ("spec", "complexity") in error_locs(info.value)


def test_task_dependencies_must_be_object_names():
    with pytest.raises(ValidationError) as info:
        AgentTask.model_validate(task(dependencies=["b1-t-0", "B1_T_2"]))
    assert ("spec", "dependencies", 1) in error_locs(info.value)


def test_unknown_task_priority_is_refused():
    with pytest.raises(ValidationError) as info:
        AgentTask.model_validate(task(priority="asap"))
    assert ("spec", "priority") in error_locs(info.value)


def test_batch_ref_must_be_an_object():
    with pytest.raises(ValidationError) as info:
        AgentTask.model_validate(task(batchRef="b1"))
    assert ("spec", "batchRef") in error_locs(info.value)


def test_approvals_parse_a_comma_separated_list():
    assert approved("review", "alice,bob").approvals("review") == ["alice", "bob"]


def test_approvals_are_deduplicated_and_blanks_ignored():
    task_ = approved("review", " bob , alice,, bob ,  ,alice")
    assert task_.approvals("review") == ["alice", "bob"]


def test_approvals_of_a_stage_without_annotation_are_empty():
    assert approved("review", "alice").approvals("deploy") == []
    assert AgentTask.model_validate(task()).approvals("review") == []


@pytest.mark.parametrize("value", ["", " ", ",", " , ,"])
def test_blank_approval_annotation_means_no_approvals(value):
    assert approved("review", value).approvals("review") == []


def test_approvals_are_per_stage():
    doc = task(
        annotations={
            APPROVE_ANNOTATION_PREFIX + "design": "carol",
            APPROVE_ANNOTATION_PREFIX + "review": "alice",
        }
    )
    loaded = AgentTask.model_validate(doc)
    assert loaded.approvals("design") == ["carol"]
    assert loaded.approvals("review") == ["alice"]


@pytest.mark.parametrize(
    ("value", "action"),
    [
        ("retry", HumanAction.RETRY),
        ("skip", HumanAction.SKIP),
        ("abort", HumanAction.ABORT),
        ("  Retry ", HumanAction.RETRY),
        ("ABORT", HumanAction.ABORT),
    ],
)
def test_requested_action_reads_the_action_annotation(value, action):
    assert with_action(value).requested_action() is action


@pytest.mark.parametrize("value", ["", "  ", "restart", "retry,skip"])
def test_blank_or_unknown_action_is_no_action(value):
    assert with_action(value).requested_action() is None


def test_task_without_action_annotation_requests_nothing():
    assert AgentTask.model_validate(task()).requested_action() is None


@pytest.mark.parametrize(
    ("phase", "terminal", "satisfies"),
    [
        (TaskPhase.PENDING, False, False),
        (TaskPhase.RUNNING, False, False),
        (TaskPhase.AWAITING_APPROVAL, False, False),
        (TaskPhase.ESCALATED, False, False),
        (TaskPhase.SUCCEEDED, True, True),
        (TaskPhase.FAILED, True, False),
        (TaskPhase.DEPENDENCY_FAILED, True, False),
        (TaskPhase.SKIPPED, True, True),
        (TaskPhase.ABORTED, True, False),
    ],
)
def test_task_phase_terminality_and_whether_it_releases_dependents(phase, terminal, satisfies):
    assert phase.terminal is terminal
    assert phase.satisfies_dependents is satisfies


def test_status_stage_lookup_returns_none_for_an_unknown_stage():
    status = AgentTaskStatus(stages=[StageStatus(name="implement")])
    implement = status.stage("implement")
    assert implement is not None
    assert implement.phase is StagePhase.PENDING
    assert status.stage("review") is None
