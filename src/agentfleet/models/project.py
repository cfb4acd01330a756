"""Project: the git repository agents work in, and its defaults."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from .meta import AgentType, CamelModel, ObjectRef, PrinterColumn, Resource, Status, phase_columns


class Repository(CamelModel):
    url: str = Field(min_length=1, description="Where the repository lives: a URL or a local path.")
    base_branch: str = Field(default="main", min_length=1)
    credentials_secret_ref: ObjectRef | None = None


class ProjectSpec(CamelModel):
    repository: Repository
    setup_script: str | None = Field(
        default=None, description="Run in each new worktree before the first stage."
    )
    default_workflow_ref: ObjectRef | None = None
    default_agent_assignments: dict[AgentType, str] = Field(
        default_factory=dict, description="agentType -> AgentConfig name, when a batch names none."
    )


class ProjectStatus(Status):
    pass


class Project(Resource[ProjectSpec, ProjectStatus]):
    KIND: ClassVar[str] = "Project"
    PLURAL: ClassVar[str] = "projects"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("afproj",)
    PRINTER_COLUMNS = (
        PrinterColumn(name="Repository", type="string", json_path=".spec.repository.url"),
        *phase_columns("Ready"),
    )

    kind: Literal["Project"] = "Project"
    spec: ProjectSpec
    status: ProjectStatus | None = None
