"""Shared building blocks: names, references, the camelCase wire form, statuses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from agentfleet.models.meta import (
    API_VERSION,
    Condition,
    ConditionStatus,
    ObjectMeta,
    ObjectRef,
    Priority,
    Status,
    phase_columns,
)
from agentfleet.models.project import Project

from .manifests import error_messages, project


def test_api_version_is_group_slash_version():
    assert API_VERSION == "agentfleet.dev/v1alpha1"


@pytest.mark.parametrize(
    "name",
    ["demo", "a", "demo-1", "0demo", "my.project", "a" * 253, "a1.b2.c3"],
)
def test_valid_dns1123_subdomain_names_are_accepted(name):
    assert ObjectRef(name=name).name == name


@pytest.mark.parametrize(
    "name",
    [
        "Demo",  # uppercase
        "my_project",  # underscore
        "-demo",  # leading dash
        "demo-",  # trailing dash
        "",  # empty
        "de mo",  # space
        "a..b",  # empty dot segment
        ".demo",
        "a/b",
        "a" * 254,  # too long
    ],
)
def test_invalid_object_names_are_refused_with_a_fixable_message(name):
    with pytest.raises(ValidationError) as info:
        ObjectRef(name=name)
    message = error_messages(info.value)
    assert "is not a valid name" in message
    assert "lowercase" in message


def test_object_name_with_a_trailing_newline_is_refused():
    # `re.match` with `$` accepts "demo\n"; a name with a newline must never reach a Pod name.
    with pytest.raises(ValidationError):
        ObjectRef(name="demo\n")


def test_object_ref_refuses_unknown_fields():
    with pytest.raises(ValidationError) as info:
        ObjectRef.model_validate({"name": "demo", "namespace": "other"})
    assert info.value.errors()[0]["type"] == "extra_forbidden"


def test_object_meta_keeps_fields_it_does_not_model():
    meta = ObjectMeta.model_validate(
        {"name": "demo", "finalizers": ["agentfleet.dev/cleanup"], "resourceVersion": "7"}
    )
    assert meta.resource_version == "7"
    wire = meta.to_wire()
    assert wire["finalizers"] == ["agentfleet.dev/cleanup"]
    assert wire["resourceVersion"] == "7"
    assert ObjectMeta.model_validate(wire) == meta


def test_object_meta_name_is_validated():
    with pytest.raises(ValidationError):
        ObjectMeta.model_validate({"name": "Bad_Name"})


def test_object_meta_parses_creation_timestamp_and_round_trips_it():
    meta = ObjectMeta.model_validate({"name": "demo", "creationTimestamp": "2024-05-01T12:00:00Z"})
    assert meta.creation_timestamp == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert ObjectMeta.model_validate(meta.to_wire()) == meta


def test_to_wire_uses_camel_case_and_drops_unset_optionals():
    condition = Condition(type="Ready", status=ConditionStatus.TRUE, observed_generation=3)
    wire = condition.to_wire()
    assert wire == {
        "type": "Ready",
        "status": "True",
        "reason": "",
        "message": "",
        "observedGeneration": 3,
    }
    assert "lastTransitionTime" not in wire


def test_models_accept_both_camel_case_and_snake_case_input():
    camel = Condition.model_validate({"type": "Ready", "status": "True", "observedGeneration": 1})
    snake = Condition.model_validate({"type": "Ready", "status": "True", "observed_generation": 1})
    assert camel == snake
    assert camel.observed_generation == 1


def test_condition_status_outside_true_false_unknown_is_refused():
    with pytest.raises(ValidationError):
        Condition.model_validate({"type": "Ready", "status": "yes"})


def test_status_condition_finds_by_type_or_returns_none():
    status = Status(
        conditions=[
            Condition(type="Ready", status=ConditionStatus.TRUE),
            Condition(type="Succeeded", status=ConditionStatus.FALSE, reason="Failed"),
        ]
    )
    succeeded = status.condition("Succeeded")
    assert succeeded is not None
    assert succeeded.reason == "Failed"
    assert status.condition("Missing") is None


def test_priority_rank_orders_low_to_critical():
    ranks = [p.rank for p in (Priority.LOW, Priority.MEDIUM, Priority.HIGH, Priority.CRITICAL)]
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == 4


def test_phase_columns_include_progress_only_when_asked():
    without = [c.name for c in phase_columns("Ready")]
    with_progress = [c.name for c in phase_columns("Succeeded", ".status.progress")]
    assert without == ["Phase", "Reason", "Age"]
    assert with_progress == ["Phase", "Progress", "Reason", "Age"]
    reason = phase_columns("Succeeded")[1]
    assert reason.json_path == '.status.conditions[?(@.type=="Succeeded")].reason'
    assert reason.priority == 1


def test_resource_defaults_api_version_and_kind():
    doc = project()
    del doc["apiVersion"], doc["kind"]
    loaded = Project.model_validate(doc)
    assert loaded.api_version == API_VERSION
    assert loaded.kind == "Project"
    assert loaded.to_wire()["apiVersion"] == API_VERSION


def test_resource_refuses_another_api_version():
    doc = project()
    doc["apiVersion"] = "agentfleet.dev/v1"
    with pytest.raises(ValidationError) as info:
        Project.model_validate(doc)
    assert ("apiVersion",) in [tuple(e["loc"]) for e in info.value.errors()]


def test_resource_name_is_its_metadata_name():
    assert Project.model_validate(project("demo")).name == "demo"
