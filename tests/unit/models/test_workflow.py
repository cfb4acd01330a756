"""Workflow: stages, their dependency graph, and the failure strategy."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentfleet.models import criteria
from agentfleet.models.meta import AgentType
from agentfleet.models.workflow import FailureStrategy, Stage, Workflow, WorkflowSpec

from .manifests import error_locs, error_messages, stage, workflow


def spec_of(*stages: dict[str, object], **fields: object) -> WorkflowSpec:
    return WorkflowSpec.model_validate({"stages": list(stages), **fields})


def refusal(*stages: dict[str, object], **fields: object) -> str:
    with pytest.raises(ValidationError) as info:
        spec_of(*stages, **fields)
    return error_messages(info.value)


def test_workflow_parses_stages_in_snake_case():
    doc = workflow(
        stages=[
            stage("implement", action="implement", instructions="Build it.", timeoutMinutes=30),
            {
                "name": "review",
                "agentRef": {"name": "reviewer"},
                "dependencies": ["implement"],
                "requiredApprovals": 1,
                "successCriteria": [
                    {"type": "tests_pass", "command": "pytest -q"},
                    {"type": "coverage_threshold", "minimum": 80},
                ],
            },
        ],
        parallelExecution=True,
        failureStrategy="RetryWithDifferentAgent",
        maxRetries=2,
        environmentTemplate={"baseBranch": "develop", "testFixtures": ["fixtures/db.sql"]},
    )
    spec = Workflow.model_validate(doc).spec
    implement, review = spec.stages
    assert implement.agent_type is AgentType.DEVELOPMENT
    assert implement.timeout_minutes == 30
    assert review.agent_ref is not None
    assert review.agent_ref.name == "reviewer"
    assert review.agent_type is None
    assert review.required_approvals == 1
    assert review.dependencies == ["implement"]
    assert [type(c) for c in review.success_criteria] == [
        criteria.TestsPass,
        criteria.CoverageThreshold,
    ]
    assert spec.parallel_execution is True
    assert spec.failure_strategy is FailureStrategy.RETRY_WITH_DIFFERENT_AGENT
    assert spec.max_retries == 2
    assert spec.environment_template.base_branch == "develop"


def test_workflow_defaults_continue_others_sequentially_without_retries():
    spec = spec_of(stage("implement"))
    assert spec.failure_strategy is FailureStrategy.CONTINUE_OTHERS
    assert spec.parallel_execution is False
    assert spec.max_retries is None
    only = spec.stages[0]
    assert only.required_approvals == 0
    assert only.timeout_minutes is None
    assert only.success_criteria == []


def test_workflow_round_trips_through_the_wire_form():
    doc = workflow(
        stages=[
            stage("implement", successCriteria=[{"type": "tests_pass", "command": "pytest"}]),
            {"name": "review", "agentRef": {"name": "reviewer"}, "dependencies": ["implement"]},
        ],
        failureStrategy="EscalateToHuman",
    )
    loaded = Workflow.model_validate(doc)
    wire = loaded.to_wire()
    assert wire["spec"]["failureStrategy"] == "EscalateToHuman"
    assert wire["spec"]["stages"][0]["successCriteria"] == [
        {"type": "tests_pass", "command": "pytest"}
    ]
    assert wire["spec"]["stages"][1]["agentRef"] == {"name": "reviewer"}
    assert "agentType" not in wire["spec"]["stages"][1]
    assert Workflow.model_validate(wire) == loaded


def test_unknown_failure_strategy_is_refused_listing_the_known_ones():
    message = refusal(stage("a"), failureStrategy="GiveUp")
    assert "'AbortAll'" in message
    assert "'EscalateToHuman'" in message


def test_unknown_stage_agent_type_is_refused():
    with pytest.raises(ValidationError) as info:
        Stage.model_validate({"name": "a", "agentType": "Tester"})
    assert ("agentType",) in error_locs(info.value)


def test_stage_with_both_agent_type_and_agent_ref_is_refused():
    with pytest.raises(ValidationError) as info:
        Stage.model_validate({"name": "a", "agentType": "Development", "agentRef": {"name": "dev"}})
    assert "a stage takes `agentType` or `agentRef`, not both" in error_messages(info.value)


def test_stage_with_neither_agent_type_nor_agent_ref_is_refused():
    with pytest.raises(ValidationError) as info:
        Stage.model_validate({"name": "a"})
    assert "a stage needs `agentType` or `agentRef`" in error_messages(info.value)


def test_stage_agent_ref_must_be_an_object():
    with pytest.raises(ValidationError) as info:
        Stage.model_validate({"name": "a", "agentRef": "dev"})
    assert ("agentRef",) in error_locs(info.value)


@pytest.mark.parametrize("value", [0, -1])
def test_zero_or_negative_stage_timeout_is_refused(value):
    with pytest.raises(ValidationError) as info:
        Stage.model_validate({"name": "a", "agentType": "Development", "timeoutMinutes": value})
    assert ("timeoutMinutes",) in error_locs(info.value)


def test_negative_required_approvals_are_refused_but_zero_is_fine():
    with pytest.raises(ValidationError):
        Stage.model_validate({"name": "a", "agentType": "Development", "requiredApprovals": -1})
    ok = Stage.model_validate({"name": "a", "agentType": "Development", "requiredApprovals": 0})
    assert ok.required_approvals == 0


def test_negative_max_retries_are_refused_but_zero_is_fine():
    refusal(stage("a"), maxRetries=-1)
    assert spec_of(stage("a"), maxRetries=0).max_retries == 0


def test_workflow_without_stages_is_refused():
    with pytest.raises(ValidationError) as info:
        WorkflowSpec.model_validate({"stages": []})
    assert ("stages",) in error_locs(info.value)


@pytest.mark.parametrize("name", ["Implement", "run_tests", "a.b", "-a", "a" * 64, ""])
def test_stage_names_must_be_dns_labels(name):
    with pytest.raises(ValidationError) as info:
        Stage.model_validate({"name": name, "agentType": "Development"})
    assert "is not a valid name" in error_messages(info.value)


def test_stage_name_of_63_characters_is_accepted():
    assert Stage.model_validate({"name": "a" * 63, "agentType": "Development"}).name == "a" * 63


def test_stage_dependency_on_an_invalid_name_is_refused():
    with pytest.raises(ValidationError) as info:
        Stage.model_validate({"name": "a", "agentType": "Development", "dependencies": ["B"]})
    assert ("dependencies", 0) in error_locs(info.value)


def test_duplicate_stage_names_are_refused_naming_the_position():
    message = refusal(stage("a"), stage("b"), stage("b"))
    assert "stages[2].name: duplicate stage name 'b'" in message


def test_stage_depending_on_an_unknown_stage_is_refused_listing_the_stages():
    message = refusal(stage("a"), stage("b", "deploy"))
    assert (
        "stages[1].dependencies: stage 'b' depends on unknown stage 'deploy' (stages: a, b)"
        in message
    )


def test_stage_depending_on_itself_is_refused():
    message = refusal(stage("a"), stage("b", "b"))
    assert "stages[1].dependencies: stage 'b' depends on itself" in message


def test_two_stage_cycle_is_refused_naming_the_cycle():
    message = refusal(stage("a", "b"), stage("b", "a"))
    assert "stages form a dependency cycle: a -> b -> a" in message


def test_longer_stage_cycle_is_named_in_dependency_order():
    message = refusal(stage("start"), stage("a", "b", "start"), stage("b", "c"), stage("c", "a"))
    assert "stages form a dependency cycle: a -> b -> c -> a" in message


def test_stage_may_depend_on_a_stage_listed_after_it():
    spec = spec_of(stage("review", "implement"), stage("implement"))
    assert spec.stages[0].dependencies == ["implement"]


def test_diamond_of_stages_is_accepted():
    spec = spec_of(stage("a"), stage("b", "a"), stage("c", "a"), stage("d", "b", "c"))
    assert [s.name for s in spec.stages] == ["a", "b", "c", "d"]


def test_stage_lookup_by_name():
    spec = spec_of(stage("a"), stage("b", "a"))
    assert spec.stage("b").dependencies == ["a"]
    with pytest.raises(KeyError):
        spec.stage("missing")


def test_unknown_stage_field_is_refused():
    with pytest.raises(ValidationError) as info:
        Workflow.model_validate(workflow(stages=[stage("a", retries=3)]))
    errors = {tuple(e["loc"]): e["type"] for e in info.value.errors()}
    assert errors[("spec", "stages", 0, "retries")] == "extra_forbidden"


def test_unknown_success_criterion_type_in_a_stage_is_refused():
    with pytest.raises(ValidationError):
        Workflow.model_validate(
            workflow(stages=[stage("a", successCriteria=[{"type": "vibes_ok"}])])
        )


def test_stage_name_with_a_trailing_newline_is_refused():
    # `re.match` with `$` accepts "implement\n"; stage names become part of Pod names.
    with pytest.raises(ValidationError):
        Stage.model_validate({"name": "implement\n", "agentType": "Development"})
