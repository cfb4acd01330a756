"""Workflow: the stages every task goes through, and what happens when one fails."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal, Self

from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from ..core.dag import find_cycle
from .criteria import SuccessCriterion
from .meta import (
    AgentType,
    CamelModel,
    LabelName,
    ObjectRef,
    PrinterColumn,
    Resource,
    Status,
    phase_columns,
)


class FailureStrategy(StrEnum):
    ABORT_ALL = "AbortAll"
    CONTINUE_OTHERS = "ContinueOthers"
    RETRY_WITH_DIFFERENT_AGENT = "RetryWithDifferentAgent"
    ESCALATE_TO_HUMAN = "EscalateToHuman"


class Stage(CamelModel):
    name: LabelName
    agent_type: AgentType | None = None
    agent_ref: ObjectRef | None = None
    action: str = Field(default="", description="What the stage does, in a word: implement, test.")
    instructions: str = ""
    required_approvals: NonNegativeInt = Field(
        default=0, description="Approvals a stage's successful result waits for before it counts."
    )
    timeout_minutes: PositiveInt | None = None
    dependencies: list[LabelName] = Field(default_factory=list)
    success_criteria: list[SuccessCriterion] = Field(default_factory=list)

    @model_validator(mode="after")
    def _needs_an_agent(self) -> Self:
        if self.agent_type is None and self.agent_ref is None:
            raise ValueError("a stage needs `agentType` or `agentRef`")
        if self.agent_type is not None and self.agent_ref is not None:
            raise ValueError("a stage takes `agentType` or `agentRef`, not both")
        return self


class EnvironmentTemplate(CamelModel):
    base_branch: str | None = None
    test_fixtures: list[str] = Field(default_factory=list)
    mock_services: list[str] = Field(default_factory=list)


class WorkflowSpec(CamelModel):
    stages: list[Stage] = Field(min_length=1)
    parallel_execution: bool = Field(
        default=False, description="Run stages whose dependencies are met side by side."
    )
    failure_strategy: FailureStrategy = FailureStrategy.CONTINUE_OTHERS
    max_retries: NonNegativeInt | None = Field(
        default=None,
        description=(
            "Extra attempts of a failed stage before the failure strategy applies. Unset: none, "
            "except RetryWithDifferentAgent, which then tries every other agent of the type once."
        ),
    )
    environment_template: EnvironmentTemplate = Field(default_factory=EnvironmentTemplate)

    @field_validator("stages")
    @classmethod
    def _stage_graph_is_sound(cls, stages: list[Stage]) -> list[Stage]:
        names = [s.name for s in stages]
        seen: set[str] = set()
        for index, name in enumerate(names):
            if name in seen:
                raise ValueError(f"stages[{index}].name: duplicate stage name {name!r}")
            seen.add(name)
        for index, stage in enumerate(stages):
            for dep in stage.dependencies:
                if dep == stage.name:
                    raise ValueError(
                        f"stages[{index}].dependencies: stage {stage.name!r} depends on itself"
                    )
                if dep not in seen:
                    raise ValueError(
                        f"stages[{index}].dependencies: stage {stage.name!r} depends on "
                        f"unknown stage {dep!r} (stages: {', '.join(names)})"
                    )
        cycle = find_cycle({s.name: s.dependencies for s in stages})
        if cycle:
            raise ValueError("stages form a dependency cycle: " + " -> ".join(cycle))
        return stages

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)


class WorkflowStatus(Status):
    pass


class Workflow(Resource[WorkflowSpec, WorkflowStatus]):
    KIND: ClassVar[str] = "Workflow"
    PLURAL: ClassVar[str] = "workflows"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("afwf",)
    PRINTER_COLUMNS = (
        PrinterColumn(name="Strategy", type="string", json_path=".spec.failureStrategy"),
        *phase_columns("Ready"),
    )

    kind: Literal["Workflow"] = "Workflow"
    spec: WorkflowSpec
    status: WorkflowStatus | None = None
