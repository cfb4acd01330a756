"""Success criteria: typed checks run in the worktree after a stage."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .meta import CamelModel


class FileCreated(CamelModel):
    type: Literal["file_created"] = "file_created"
    pattern: str = Field(min_length=1, description="Glob, relative to the worktree.")


class TestsPass(CamelModel):
    type: Literal["tests_pass"] = "tests_pass"
    command: str = Field(min_length=1, description="Split like a shell would, run without one.")


class IntegrationTestsPass(CamelModel):
    type: Literal["integration_tests_pass"] = "integration_tests_pass"
    command: str = Field(min_length=1)


class CoverageThreshold(CamelModel):
    type: Literal["coverage_threshold"] = "coverage_threshold"
    minimum: float = Field(ge=0, le=100, description="Percent of lines covered.")
    report: str = Field(
        default="coverage.xml", description="Cobertura XML or coverage.py JSON report."
    )


class BddTestsPass(CamelModel):
    type: Literal["bdd_tests_pass"] = "bdd_tests_pass"
    features: str = Field(default="features", description="Folder or glob of Gherkin features.")
    command: str = Field(min_length=1)


class ScenarioCoverage(CamelModel):
    type: Literal["scenario_coverage"] = "scenario_coverage"
    minimum: float = Field(ge=0, le=100, description="Percent of scenarios that ran and passed.")


class DesignApproved(CamelModel):
    type: Literal["design_approved"] = "design_approved"
    threshold: float = Field(
        default=1.0, gt=0, le=1, description="Share of reviewers' verdicts that must approve."
    )


SuccessCriterion = Annotated[
    FileCreated
    | TestsPass
    | IntegrationTestsPass
    | CoverageThreshold
    | BddTestsPass
    | ScenarioCoverage
    | DesignApproved,
    Field(discriminator="type"),
]

CRITERION_TYPES: tuple[type[CamelModel], ...] = (
    FileCreated,
    TestsPass,
    IntegrationTestsPass,
    CoverageThreshold,
    BddTestsPass,
    ScenarioCoverage,
    DesignApproved,
)
