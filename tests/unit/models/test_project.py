"""Project: the repository agents work in, and its defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentfleet.models.meta import AgentType
from agentfleet.models.project import Project, ProjectSpec

from .manifests import error_locs, project


def test_project_parses_camel_case_into_snake_case_attributes():
    doc = project(
        setupScript="make setup",
        defaultWorkflowRef={"name": "flow"},
        defaultAgentAssignments={"Development": "dev", "CodeReview": "reviewer"},
    )
    doc["spec"]["repository"].update(
        baseBranch="develop", credentialsSecretRef={"name": "git-creds"}
    )
    loaded = Project.model_validate(doc)
    assert loaded.spec.setup_script == "make setup"
    assert loaded.spec.repository.base_branch == "develop"
    assert loaded.spec.repository.credentials_secret_ref is not None
    assert loaded.spec.repository.credentials_secret_ref.name == "git-creds"
    assert loaded.spec.default_workflow_ref is not None
    assert loaded.spec.default_workflow_ref.name == "flow"
    assert loaded.spec.default_agent_assignments == {
        AgentType.DEVELOPMENT: "dev",
        AgentType.CODE_REVIEW: "reviewer",
    }


def test_project_defaults_base_branch_to_main_and_has_no_setup_script():
    spec = Project.model_validate(project()).spec
    assert spec.repository.base_branch == "main"
    assert spec.setup_script is None
    assert spec.default_workflow_ref is None
    assert spec.default_agent_assignments == {}


def test_project_round_trips_through_the_wire_form():
    doc = project(
        defaultWorkflowRef={"name": "flow"}, defaultAgentAssignments={"Development": "dev"}
    )
    doc["metadata"]["labels"] = {"team": "core"}
    loaded = Project.model_validate(doc)
    wire = loaded.to_wire()
    assert Project.model_validate(wire) == loaded
    assert wire["spec"]["defaultWorkflowRef"] == {"name": "flow"}
    assert wire["spec"]["repository"]["baseBranch"] == "main"
    assert "setupScript" not in wire["spec"]
    assert "status" not in wire


def test_project_status_round_trips():
    doc = project()
    doc["status"] = {
        "phase": "Ready",
        "observedGeneration": 2,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Reachable"}],
    }
    loaded = Project.model_validate(doc)
    assert loaded.status is not None
    assert loaded.status.observed_generation == 2
    assert Project.model_validate(loaded.to_wire()) == loaded


def test_project_spec_can_be_built_with_snake_case_names():
    spec = ProjectSpec.model_validate(
        {"repository": {"url": "/repo", "base_branch": "trunk"}, "setup_script": "true"}
    )
    assert spec.repository.base_branch == "trunk"
    assert spec.to_wire()["setupScript"] == "true"


def test_project_without_repository_is_refused():
    doc = project()
    del doc["spec"]["repository"]
    with pytest.raises(ValidationError) as info:
        Project.model_validate(doc)
    assert ("spec", "repository") in error_locs(info.value)


@pytest.mark.parametrize(("field", "value"), [("url", ""), ("baseBranch", "")])
def test_empty_repository_url_or_branch_is_refused(field, value):
    doc = project()
    doc["spec"]["repository"][field] = value
    with pytest.raises(ValidationError) as info:
        Project.model_validate(doc)
    assert ("spec", "repository", field) in error_locs(info.value)


def test_references_are_objects_not_bare_names():
    with pytest.raises(ValidationError) as info:
        Project.model_validate(project(defaultWorkflowRef="flow"))
    assert ("spec", "defaultWorkflowRef") in error_locs(info.value)


def test_reference_to_an_invalid_name_is_refused():
    with pytest.raises(ValidationError) as info:
        Project.model_validate(project(defaultWorkflowRef={"name": "My_Flow"}))
    assert ("spec", "defaultWorkflowRef", "name") in error_locs(info.value)


def test_default_agent_assignment_for_an_unknown_agent_type_is_refused():
    with pytest.raises(ValidationError):
        Project.model_validate(project(defaultAgentAssignments={"Tester": "qa"}))


def test_unknown_spec_field_is_refused():
    with pytest.raises(ValidationError) as info:
        Project.model_validate(project(repo="oops"))
    error = info.value.errors()[0]
    assert error["type"] == "extra_forbidden"
    assert tuple(error["loc"]) == ("spec", "repo")


def test_snake_case_field_names_are_not_treated_as_unknown():
    # populate_by_name: the Python names are accepted as well as the wire names.
    loaded = Project.model_validate(project(setup_script="make"))
    assert loaded.spec.setup_script == "make"


@pytest.mark.parametrize("name", ["Demo", "my_project", "-demo"])
def test_project_with_a_bad_metadata_name_is_refused(name):
    with pytest.raises(ValidationError) as info:
        Project.model_validate(project(name))
    assert ("metadata", "name") in error_locs(info.value)


def test_project_document_of_another_kind_is_refused():
    doc = project()
    doc["kind"] = "Workflow"
    with pytest.raises(ValidationError) as info:
        Project.model_validate(doc)
    assert ("kind",) in error_locs(info.value)


def test_project_class_metadata_for_the_crd():
    assert Project.KIND == "Project"
    assert Project.PLURAL == "projects"
    assert Project.SHORT_NAMES == ("afproj",)
    assert [c.name for c in Project.PRINTER_COLUMNS] == [
        "Repository",
        "Phase",
        "Reason",
        "Age",
    ]
