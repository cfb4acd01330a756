"""Checks before anything is written: references resolve, the repository and branches exist.

The engine would wait on a missing reference (manifests may arrive in any order); a user who
asked to run a batch now wants to hear about it at once, and find nothing changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..models import AgentConfig, AgentTask, Project, TicketBatch, Workflow
from ..models.loader import LoadedResource, ManifestError, ManifestIssue
from ..models.meta import Resource
from .repository import has_branch


class Known:
    """Names of every object in the files being applied and in the store already."""

    def __init__(self, loaded: Sequence[LoadedResource], stored: Iterable[Resource[Any, Any]]):
        self.objects: dict[tuple[str, str], Resource[Any, Any]] = {
            (r.kind, r.name): r for r in stored
        }
        for item in loaded:
            self.objects[(item.resource.kind, item.resource.name)] = item.resource

    def get(self, kind: str, name: str) -> Resource[Any, Any] | None:
        return self.objects.get((kind, name))

    def of_kind(self, kind: str) -> list[Resource[Any, Any]]:
        return [r for (k, _), r in self.objects.items() if k == kind]


def check_references(
    loaded: Sequence[LoadedResource], stored: Iterable[Resource[Any, Any]], repo: Path | None
) -> None:
    """Raise ManifestError naming file, document and field of every reference that is missing."""
    known = Known(loaded, stored)
    issues: list[ManifestIssue] = []

    def need(item: LoadedResource, kind: str, name: str, field: str) -> Resource[Any, Any] | None:
        found = known.get(kind, name)
        if found is None:
            issues.append(
                ManifestIssue(
                    item.file,
                    item.document,
                    field,
                    f"{kind} {name!r} not found in these manifests nor among applied objects",
                )
            )
        return found

    agent_types = {a.spec.agent_type for a in known.of_kind("AgentConfig")}
    for item in loaded:
        res = item.resource
        if isinstance(res, TicketBatch):
            project = need(item, "Project", res.spec.project_ref.name, "spec.projectRef.name")
            workflow_ref = res.spec.workflow_ref
            field = "spec.workflowRef.name"
            if workflow_ref is None and isinstance(project, Project):
                workflow_ref = project.spec.default_workflow_ref
                field = "spec.workflowRef"
            if workflow_ref is None and project is not None:
                issues.append(
                    ManifestIssue(
                        item.file,
                        item.document,
                        "spec.workflowRef",
                        "no workflow: set spec.workflowRef or the project's defaultWorkflowRef",
                    )
                )
            elif workflow_ref is not None:
                workflow = need(item, "Workflow", workflow_ref.name, field)
                if isinstance(workflow, Workflow):
                    for stage in workflow.spec.stages:
                        if stage.agent_type is not None and stage.agent_type not in agent_types:
                            issues.append(
                                ManifestIssue(
                                    item.file,
                                    item.document,
                                    field,
                                    f"workflow {workflow.name!r} stage {stage.name!r} needs an "
                                    f"AgentConfig of type {stage.agent_type}; there is none",
                                )
                            )
            for agent_type, agent in res.spec.agent_assignments.items():
                need(item, "AgentConfig", agent, f"spec.agentAssignments.{agent_type}")
            if res.spec.refinement.agent_ref is not None:
                need(
                    item,
                    "AgentConfig",
                    res.spec.refinement.agent_ref.name,
                    "spec.refinement.agentRef.name",
                )
        elif isinstance(res, Project):
            if res.spec.default_workflow_ref is not None:
                need(
                    item, "Workflow", res.spec.default_workflow_ref.name, "spec.defaultWorkflowRef"
                )
            for agent_type, agent in res.spec.default_agent_assignments.items():
                need(item, "AgentConfig", agent, f"spec.defaultAgentAssignments.{agent_type}")
            if repo is not None and not has_branch(repo, res.spec.repository.base_branch):
                issues.append(
                    ManifestIssue(
                        item.file,
                        item.document,
                        "spec.repository.baseBranch",
                        f"branch {res.spec.repository.base_branch!r} does not exist in {repo}",
                    )
                )
        elif isinstance(res, Workflow):
            for index, stage in enumerate(res.spec.stages):
                if stage.agent_ref is not None:
                    need(
                        item,
                        "AgentConfig",
                        stage.agent_ref.name,
                        f"spec.stages[{index}].agentRef.name",
                    )
        elif isinstance(res, AgentTask) and res.spec.batch_ref is not None:
            need(item, "TicketBatch", res.spec.batch_ref.name, "spec.batchRef.name")
        elif isinstance(res, AgentConfig):
            continue
    if issues:
        raise ManifestError(issues)
