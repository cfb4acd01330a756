"""load_manifests: files and folders of YAML in, typed resources or one ManifestError out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agentfleet.models import AgentConfig, Project, TicketBatch, Workflow
from agentfleet.models.loader import (
    LoadedResource,
    ManifestError,
    ManifestIssue,
    load_manifests,
    manifest_files,
    parse_document,
)

from . import manifests as m


def write(path: Path, *docs: dict[str, Any] | str | None) -> Path:
    """Write `docs` as one multi-document YAML file; strings are written as they are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = []
    for doc in docs:
        if isinstance(doc, str):
            parts.append(doc)
        elif doc is None:
            parts.append("")
        else:
            parts.append(yaml.safe_dump(doc, sort_keys=False))
    path.write_text("---\n".join(parts), encoding="utf-8")
    return path


def issues_of(*paths: Path | str) -> list[ManifestIssue]:
    with pytest.raises(ManifestError) as info:
        load_manifests(paths)
    return info.value.issues


def only_issue(*paths: Path | str) -> ManifestIssue:
    issues = issues_of(*paths)
    assert len(issues) == 1, issues
    return issues[0]


def test_single_file_loads_every_document_in_order(tmp_path):
    path = write(tmp_path / "all.yaml", m.project(), m.agent(), m.workflow(), m.batch())
    loaded = load_manifests([path])
    assert [type(item.resource) for item in loaded] == [Project, AgentConfig, Workflow, TicketBatch]
    assert [item.document for item in loaded] == [1, 2, 3, 4]
    assert {item.file for item in loaded} == {str(path)}


def test_paths_may_be_strings(tmp_path):
    path = write(tmp_path / "p.yaml", m.project())
    assert [item.resource.name for item in load_manifests([str(path)])] == ["demo"]


def test_loaded_resources_are_typed_and_validated(tmp_path):
    path = write(tmp_path / "b.yaml", m.batch(tickets=[m.ticket("T-1"), m.ticket("T-2", "T-1")]))
    [item] = load_manifests([path])
    assert isinstance(item, LoadedResource)
    assert isinstance(item.resource, TicketBatch)
    assert item.resource.spec.tickets[1].dependencies == ["T-1"]


def test_empty_documents_are_skipped_but_still_counted(tmp_path):
    # Document 1 is the project, 2 is empty, 3 holds only a comment, 4 is the agent.
    path = write(tmp_path / "gaps.yaml", m.project(), None, "# only a comment\n", m.agent())
    loaded = load_manifests([path])
    assert [item.resource.kind for item in loaded] == ["Project", "AgentConfig"]
    assert [item.document for item in loaded] == [1, 4]


def test_an_empty_file_loads_nothing(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    assert load_manifests([path]) == []


def test_json_manifests_are_read_too(tmp_path):
    path = tmp_path / "project.json"
    path.write_text(
        '{"apiVersion": "agentfleet.dev/v1alpha1", "kind": "Project",'
        ' "metadata": {"name": "demo"}, "spec": {"repository": {"url": "/repo"}}}',
        encoding="utf-8",
    )
    [item] = load_manifests([path])
    assert isinstance(item.resource, Project)


def test_folders_are_read_recursively_in_sorted_order(tmp_path):
    write(tmp_path / "b.yaml", m.agent("agent-b"))
    write(tmp_path / "a.yml", m.agent("agent-a"))
    write(tmp_path / "sub" / "deeper" / "c.yaml", m.agent("agent-c"))
    write(tmp_path / "sub" / "a.yaml", m.agent("agent-sub-a"))
    (tmp_path / "README.md").write_text("not a manifest: [", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("kind: nonsense", encoding="utf-8")
    loaded = load_manifests([tmp_path])
    assert [item.resource.name for item in loaded] == [
        "agent-a",
        "agent-b",
        "agent-sub-a",
        "agent-c",
    ]
    assert manifest_files(tmp_path) == sorted(manifest_files(tmp_path))


def test_several_paths_are_loaded_in_the_order_given(tmp_path):
    second = write(tmp_path / "z" / "w.yaml", m.workflow())
    first = write(tmp_path / "a" / "p.yaml", m.project())
    loaded = load_manifests([second, first])
    assert [item.resource.kind for item in loaded] == ["Workflow", "Project"]


def test_a_missing_path_is_reported(tmp_path):
    missing = tmp_path / "nope.yaml"
    issue = only_issue(missing)
    assert issue == ManifestIssue(str(missing), None, None, "no such file or folder")
    assert str(issue) == f"{missing}: no such file or folder"


def test_malformed_yaml_is_reported_with_line_and_column(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("apiVersion: agentfleet.dev/v1alpha1\nkind: Project: oops\n", encoding="utf-8")
    issue = only_issue(path)
    assert issue.file == str(path)
    assert issue.document is None
    assert issue.reason.startswith("invalid YAML at line 2, column 14: ")
    assert "mapping values are not allowed here" in issue.reason


def test_unclosed_flow_sequence_is_reported_as_invalid_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("spec:\n  tickets: [a, b\n", encoding="utf-8")
    issue = only_issue(path)
    assert issue.reason.startswith("invalid YAML at line 3, column 1")


def test_a_document_that_is_not_a_mapping_is_reported(tmp_path):
    path = write(tmp_path / "list.yaml", m.project(), "- just\n- a list\n")
    issue = only_issue(path)
    assert (issue.file, issue.document, issue.field) == (str(path), 2, None)
    assert issue.reason == "expected a mapping, got list"


def test_unknown_kind_is_reported_listing_the_known_kinds(tmp_path):
    doc = m.project()
    doc["kind"] = "Pipeline"
    path = write(tmp_path / "k.yaml", doc)
    issue = only_issue(path)
    assert (issue.document, issue.field) == (1, "kind")
    assert issue.reason == (
        "unknown kind 'Pipeline'; expected one of "
        "AgentConfig, AgentTask, Project, TicketBatch, Workflow"
    )


def test_missing_kind_is_reported(tmp_path):
    doc = m.project()
    del doc["kind"]
    issue = only_issue(write(tmp_path / "k.yaml", doc))
    assert issue.field == "kind"
    assert "unknown kind None" in issue.reason


@pytest.mark.parametrize("api_version", ["agentfleet.dev/v1", "v1", None])
def test_wrong_api_version_is_reported(tmp_path, api_version):
    doc = m.project()
    if api_version is None:
        del doc["apiVersion"]
    else:
        doc["apiVersion"] = api_version
    issue = only_issue(write(tmp_path / "v.yaml", doc))
    assert (issue.document, issue.field) == (1, "apiVersion")
    assert issue.reason == f"expected 'agentfleet.dev/v1alpha1', got {api_version!r}"


def test_field_errors_name_file_document_field_path_and_reason(tmp_path):
    bad = m.batch(tickets=[m.ticket("T-1"), m.ticket("T-2", priority="urgent")])
    path = write(tmp_path / "batch.yaml", m.project(), bad)
    issue = only_issue(path)
    assert issue.file == str(path)
    assert issue.document == 2
    assert issue.field == "spec.tickets[1].priority"
    assert "'low', 'medium', 'high' or 'critical'" in issue.reason
    assert str(issue) == f"{path} (document 2): spec.tickets[1].priority: {issue.reason}"


def test_unknown_field_is_reported_as_unknown_field_with_its_path(tmp_path):
    bad = m.batch(tickets=[m.ticket("T-1", prio="high")])
    issue = only_issue(write(tmp_path / "b.yaml", bad))
    assert issue.field == "spec.tickets[0].prio"
    assert issue.reason == "unknown field"


def test_missing_required_field_is_reported_as_missing(tmp_path):
    doc = m.project()
    del doc["spec"]["repository"]["url"]
    issue = only_issue(write(tmp_path / "p.yaml", doc))
    assert issue.field == "spec.repository.url"
    assert issue.reason == "required field is missing"


def test_model_validator_messages_lose_pydantics_value_error_prefix(tmp_path):
    doc = m.workflow(stages=[m.stage("a", "b"), m.stage("b", "a")])
    issue = only_issue(write(tmp_path / "w.yaml", doc))
    assert issue.field == "spec.stages"
    assert issue.reason == "stages form a dependency cycle: a -> b -> a"


def test_errors_inside_success_criteria_have_no_union_tag_in_the_path(tmp_path):
    criteria = [
        {"type": "tests_pass", "command": "pytest"},
        {"type": "coverage_threshold", "minimum": 120},
    ]
    doc = m.workflow(stages=[m.stage("a", successCriteria=criteria)])
    issue = only_issue(write(tmp_path / "w.yaml", doc))
    assert issue.field == "spec.stages[0].successCriteria[1].minimum"
    assert "less than or equal to 100" in issue.reason


def test_unknown_criterion_type_is_reported_at_the_criterion(tmp_path):
    doc = m.workflow(stages=[m.stage("a", successCriteria=[{"type": "vibes"}])])
    issue = only_issue(write(tmp_path / "w.yaml", doc))
    assert issue.field == "spec.stages[0].successCriteria[0]"
    assert "'vibes'" in issue.reason


def test_every_field_error_of_one_document_is_reported(tmp_path):
    doc = m.batch(
        tickets=[m.ticket("T-1", estimatedComplexity=0), m.ticket("T-2", priority="urgent")],
        parallelLimit=0,
    )
    issues = issues_of(write(tmp_path / "b.yaml", doc))
    assert {i.field for i in issues} == {
        "spec.tickets[0].estimatedComplexity",
        "spec.tickets[1].priority",
        "spec.parallelLimit",
    }
    assert {i.document for i in issues} == {1}


def test_errors_in_several_files_are_all_reported_in_one_error(tmp_path):
    bad_kind = m.agent()
    bad_kind["kind"] = "Robot"
    write(tmp_path / "1-agents.yaml", m.agent("ok"), bad_kind)
    write(tmp_path / "2-broken.yaml", "key: [unclosed\n")
    write(tmp_path / "3-batch.yaml", m.batch(tickets=[m.ticket("T-1", "T-1")]))
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ManifestError) as info:
        load_manifests([tmp_path, missing])
    issues = info.value.issues
    where = [(Path(i.file).name, i.document, i.field) for i in issues]
    assert where == [
        ("1-agents.yaml", 2, "kind"),
        ("2-broken.yaml", None, None),
        ("3-batch.yaml", 1, "spec.tickets"),
        ("missing.yaml", None, None),
    ]
    message = str(info.value)
    assert message == "\n".join(str(i) for i in issues)
    assert "depends on itself" in message
    assert isinstance(info.value, ValueError)


def test_a_resource_defined_twice_is_reported_at_the_second_definition(tmp_path):
    first = write(tmp_path / "a.yaml", m.project("demo"))
    second = write(tmp_path / "b.yaml", m.agent("demo"), m.project("demo"))
    issue = only_issue(tmp_path)
    assert (issue.file, issue.document, issue.field) == (str(second), 2, "metadata.name")
    assert issue.reason == f"Project 'demo' is defined twice (first in {first}, document 1)"


def test_same_name_in_different_kinds_is_not_a_duplicate(tmp_path):
    path = write(tmp_path / "a.yaml", m.project("demo"), m.workflow("demo"), m.agent("demo"))
    assert len(load_manifests([path])) == 3


def test_the_same_file_given_twice_is_reported_as_a_duplicate(tmp_path):
    path = write(tmp_path / "a.yaml", m.project())
    issue = only_issue(path, path)
    assert "is defined twice" in issue.reason


def test_task_name_collision_is_reported_with_file_and_document(tmp_path):
    doc = m.batch("b1", tickets=[m.ticket("T_1"), m.ticket("t-1")])
    path = write(tmp_path / "b.yaml", doc)
    issue = only_issue(path)
    assert (issue.file, issue.document) == (str(path), 1)
    assert "tickets 'T_1' and 't-1' both become task 'b1-t-1'" in issue.reason


def test_a_file_that_is_not_utf8_is_reported(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    issue = only_issue(path)
    assert issue.file == str(path)
    assert issue.reason.startswith("cannot read: 'utf-8' codec can't decode")


def test_parse_document_validates_one_document():
    resource = parse_document(m.project(), "inline", 1)
    assert isinstance(resource, Project)
    with pytest.raises(ManifestError) as info:
        parse_document(m.project("Bad_Name"), "inline", 3)
    [issue] = info.value.issues
    assert (issue.file, issue.document, issue.field) == ("inline", 3, "metadata.name")
    assert "is not a valid name" in issue.reason


def test_issue_text_omits_what_it_does_not_know():
    assert str(ManifestIssue("f.yaml", None, None, "bad")) == "f.yaml: bad"
    assert str(ManifestIssue("f.yaml", 2, None, "bad")) == "f.yaml (document 2): bad"
    assert str(ManifestIssue("f.yaml", 2, "spec.x", "bad")) == "f.yaml (document 2): spec.x: bad"


def test_manifest_files_of_a_single_file_is_that_file_whatever_its_suffix(tmp_path):
    path = tmp_path / "manifest.txt"
    path.write_text("", encoding="utf-8")
    assert manifest_files(path) == [path]


def test_error_under_a_mapping_key_names_the_key_without_pydantic_markers(tmp_path):
    # pydantic locates a bad dict key as (..., "Tester", "[key]"); users should see the key.
    issue = only_issue(
        write(tmp_path / "p.yaml", m.project(defaultAgentAssignments={"Tester": "qa"}))
    )
    assert issue.field is not None
    assert issue.field.startswith("spec.defaultAgentAssignments")
    assert "Tester" in issue.field
    assert "[key]" not in issue.field


def test_a_map_key_that_looks_like_a_criterion_type_stays_in_the_field_path(tmp_path):
    # Union tags are stripped from paths by value, so a sub-agent named `tests_pass`
    # disappears from the path of its own error.
    doc = m.agent(subAgents={"tests_pass": {"agentType": "Tester"}})
    issue = only_issue(write(tmp_path / "a.yaml", doc))
    assert issue.field == "spec.subAgents.tests_pass.agentType"
