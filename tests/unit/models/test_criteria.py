"""Success criteria: a `type` picks the class; each has its own fields and defaults."""

from __future__ import annotations

import typing

import pytest
from pydantic import TypeAdapter, ValidationError

from agentfleet.models import criteria
from agentfleet.models.criteria import (
    CRITERION_TYPES,
    BddTestsPass,
    CoverageThreshold,
    DesignApproved,
    FileCreated,
    IntegrationTestsPass,
    ScenarioCoverage,
    SuccessCriterion,
)

CRITERION = TypeAdapter(SuccessCriterion)


def parse(raw: dict[str, object]):
    return CRITERION.validate_python(raw)


def test_tests_pass_parses_into_tests_pass_with_its_command():
    criterion = parse({"type": "tests_pass", "command": "pytest -q"})
    assert isinstance(criterion, criteria.TestsPass)
    assert criterion.command == "pytest -q"


def test_coverage_threshold_parses_with_a_default_cobertura_report():
    criterion = parse({"type": "coverage_threshold", "minimum": 80})
    assert isinstance(criterion, CoverageThreshold)
    assert criterion.minimum == 80.0
    assert criterion.report == "coverage.xml"


@pytest.mark.parametrize(
    ("raw", "cls", "fields"),
    [
        ({"type": "file_created", "pattern": "docs/*.md"}, FileCreated, {"pattern": "docs/*.md"}),
        (
            {"type": "integration_tests_pass", "command": "make it"},
            IntegrationTestsPass,
            {"command": "make it"},
        ),
        (
            {"type": "coverage_threshold", "minimum": 92.5, "report": "coverage.json"},
            CoverageThreshold,
            {"minimum": 92.5, "report": "coverage.json"},
        ),
        (
            {"type": "bdd_tests_pass", "command": "behave"},
            BddTestsPass,
            {"command": "behave", "features": "features"},
        ),
        (
            {"type": "bdd_tests_pass", "command": "behave", "features": "spec/*.feature"},
            BddTestsPass,
            {"features": "spec/*.feature"},
        ),
        ({"type": "scenario_coverage", "minimum": 100}, ScenarioCoverage, {"minimum": 100.0}),
        ({"type": "design_approved"}, DesignApproved, {"threshold": 1.0}),
        ({"type": "design_approved", "threshold": 0.5}, DesignApproved, {"threshold": 0.5}),
    ],
)
def test_each_criterion_type_parses_into_its_class_with_fields_and_defaults(raw, cls, fields):
    criterion = parse(raw)
    assert type(criterion) is cls
    for name, value in fields.items():
        assert getattr(criterion, name) == value


def test_unknown_criterion_type_is_refused_listing_the_known_types():
    with pytest.raises(ValidationError) as info:
        parse({"type": "lint_passes", "command": "ruff"})
    error = info.value.errors()[0]
    assert error["type"] == "union_tag_invalid"
    assert "'lint_passes'" in error["msg"]
    assert "'tests_pass'" in error["msg"]


def test_criterion_without_a_type_is_refused():
    with pytest.raises(ValidationError) as info:
        parse({"command": "pytest"})
    assert info.value.errors()[0]["type"] == "union_tag_not_found"


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "tests_pass"},  # command is required
        {"type": "tests_pass", "command": ""},
        {"type": "file_created", "pattern": ""},
        {"type": "bdd_tests_pass"},
        {"type": "coverage_threshold"},  # minimum is required
        {"type": "coverage_threshold", "minimum": 101},
        {"type": "coverage_threshold", "minimum": -1},
        {"type": "scenario_coverage", "minimum": 100.5},
        {"type": "design_approved", "threshold": 0},
        {"type": "design_approved", "threshold": 1.5},
    ],
)
def test_criterion_with_missing_or_out_of_range_fields_is_refused(raw):
    with pytest.raises(ValidationError):
        parse(raw)


def test_criterion_fields_of_another_type_are_refused():
    with pytest.raises(ValidationError) as info:
        parse({"type": "tests_pass", "command": "pytest", "minimum": 80})
    assert info.value.errors()[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "tests_pass", "command": "pytest -q"},
        {"type": "coverage_threshold", "minimum": 80},
        {"type": "design_approved", "threshold": 0.75},
        {"type": "bdd_tests_pass", "command": "behave"},
    ],
)
def test_criterion_round_trips_and_keeps_its_type_on_the_wire(raw):
    criterion = parse(raw)
    wire = criterion.to_wire()
    assert wire["type"] == raw["type"]
    assert parse(wire) == criterion


def test_criterion_types_cover_the_union_with_distinct_tags():
    members = typing.get_args(typing.get_args(SuccessCriterion)[0])
    assert set(members) == set(CRITERION_TYPES)
    tags = [c.model_fields["type"].default for c in CRITERION_TYPES]
    assert len(tags) == len(set(tags))
