"""A folder's agent definitions are all found and all checked, every error with its file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agentfleet.agents.discover import discover
from agentfleet.models.meta import AgentType

SAMPLES = Path(__file__).parent / "samples"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "agents"

AGENT_CONFIG = """\
apiVersion: agentfleet.dev/v1alpha1
kind: AgentConfig
metadata:
  name: {name}
spec:
  agentType: Development
  baseExecutor:
    type: claude-code
"""
CLAUDE_AGENT = "---\nname: {name}\ndescription: {description}\n---\nPrompt.\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def relative(found: str, root: Path) -> str:
    return found.removeprefix(f"{root}/")


def test_a_mixed_folder_yields_yaml_configs_and_claude_agents_with_their_files() -> None:
    root = SAMPLES / "mixed"
    found = discover(root)

    assert found.ok, found.issues
    assert [(relative(a.file, root), a.document, a.name) for a in found.agent_configs] == [
        ("fleet.yaml", 1, "builder"),
        (".claude/agents/release-helper.md", None, "release-helper"),
        (".claude/agents/security-reviewer.md", None, "security-reviewer"),
        ("agents/doc-writer.md", None, "doc-writer"),
    ]
    types = {a.name: a.resource.spec.agent_type for a in found.agent_configs}
    assert types == {
        "builder": AgentType.DEVELOPMENT,
        "release-helper": AgentType.INFRASTRUCTURE,
        "security-reviewer": AgentType.CODE_REVIEW,
        "doc-writer": AgentType.DOCUMENTATION,
    }


def test_documents_of_other_kinds_are_reported_as_skipped_not_as_errors() -> None:
    root = SAMPLES / "mixed"
    found = discover(root)

    assert [(relative(s.file, root), s.document, s.reason) for s in found.skipped] == [
        ("fleet.yaml", 2, "kind Workflow: not an AgentConfig"),
        ("fleet.yaml", 3, "kind ConfigMap: not an AgentConfig"),
    ]


def test_markdown_outside_the_agent_folders_is_not_read() -> None:
    found = discover(SAMPLES / "mixed")

    assert all("notes" not in a.file for a in found.agent_configs)
    assert all("notes" not in str(i) for i in found.issues + found.warnings)


def test_front_matter_keys_agentfleet_ignores_are_warnings() -> None:
    root = SAMPLES / "mixed"

    assert [relative(str(w), root) for w in discover(root).warnings] == [
        ".claude/agents/release-helper.md: front matter: color: not used by agentfleet; ignored"
    ]


def test_every_invalid_file_is_reported_with_file_and_field_none_hiding_another() -> None:
    root = SAMPLES / "invalid"
    found = discover(root)

    assert not found.ok
    assert [relative(str(issue), root) for issue in found.issues] == [
        "broken.yaml (document 1): spec.agentType: required field is missing",
        "broken.yaml (document 1): spec.maxParallelTasks: Input should be greater than 0",
        ".claude/agents/broken-yaml.md: front matter: invalid YAML at line 4, column 1: "
        "expected ',' or ']', but got '<stream end>'",
        "agents/Bad_Name.md: front matter: name: 'Code_Reviewer' is not a valid name: use at "
        "most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or "
        "digit (e.g. 'code-reviewer')",
        "agents/Bad_Name.md: front matter: agentType: 'Reviewer' is not one of Development, "
        "QualityAssurance, CodeReview, Documentation, Infrastructure",
        "agents/no-description.md: front matter: missing required field 'description'",
    ]


def test_a_name_defined_in_two_files_is_an_error_naming_both() -> None:
    root = SAMPLES / "duplicate"
    [issue] = discover(root).issues

    assert issue.file == str(root / ".claude/agents/reviewer.md")
    assert issue.field == "front matter: name"
    assert issue.reason == (
        f"AgentConfig 'reviewer' is defined twice (first in {root / 'reviewer.yaml'} (document 1))"
    )


def test_a_name_defined_twice_in_one_multi_document_file_names_both_documents(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "a.yaml",
        AGENT_CONFIG.format(name="dev") + "---\n" + AGENT_CONFIG.format(name="dev"),
    )

    [issue] = discover(tmp_path).issues

    assert str(issue) == (
        f"{tmp_path}/a.yaml (document 2): metadata.name: AgentConfig 'dev' is defined twice "
        f"(first in {tmp_path}/a.yaml (document 1))"
    )


def test_a_claude_agents_folder_given_itself_has_its_files_read_and_readme_skipped(
    tmp_path: Path,
) -> None:
    folder = tmp_path / ".claude" / "agents"
    write(folder / "planner.md", CLAUDE_AGENT.format(name="planner", description="Plans."))
    write(folder / "README.md", "# Our agents\n")

    found = discover(folder)

    assert found.ok, found.issues
    assert [a.name for a in found.agent_configs] == ["planner"]
    assert [s.reason for s in found.skipped] == ["a README, not an agent file"]


def test_claude_agent_files_nested_below_dot_claude_agents_are_found(tmp_path: Path) -> None:
    write(
        tmp_path / "service" / ".claude" / "agents" / "team" / "api.md",
        CLAUDE_AGENT.format(name="api", description="Builds the API."),
    )

    assert [a.name for a in discover(tmp_path).agent_configs] == ["api"]


def test_hidden_folders_other_than_dot_claude_are_not_searched(tmp_path: Path) -> None:
    write(tmp_path / ".git" / "agent.yaml", AGENT_CONFIG.format(name="hidden"))
    write(tmp_path / ".agentfleet" / "agent.yaml", AGENT_CONFIG.format(name="state"))
    write(tmp_path / "visible.yaml", AGENT_CONFIG.format(name="visible"))

    assert [a.name for a in discover(tmp_path).agent_configs] == ["visible"]


def test_unparsable_yaml_that_names_no_agent_config_is_skipped(tmp_path: Path) -> None:
    write(tmp_path / "chart" / "deployment.yaml", "metadata:\n  name: {{ .Release.Name }\n")

    found = discover(tmp_path)

    assert found.ok
    assert [s.reason for s in found.skipped] == ["not valid YAML, and names no AgentConfig"]


def test_unparsable_yaml_that_names_an_agent_config_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "agent.yaml", "kind: AgentConfig\nmetadata: [\n")

    [issue] = discover(tmp_path).issues

    assert issue.file == str(tmp_path / "agent.yaml")
    assert issue.reason.startswith("invalid YAML at line 3")


def test_an_agent_config_of_another_api_group_is_skipped(tmp_path: Path) -> None:
    write(tmp_path / "other.yaml", "apiVersion: example.com/v1\nkind: AgentConfig\n")

    found = discover(tmp_path)

    assert found.ok
    assert [s.reason for s in found.skipped] == [
        "apiVersion 'example.com/v1': not an agentfleet AgentConfig"
    ]


def test_a_folder_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    [issue] = discover(tmp_path / "missing").issues

    assert str(issue) == f"{tmp_path / 'missing'}: no such folder"


def test_as_sub_agents_claude_files_become_sub_agents_and_yaml_stays_agent_configs() -> None:
    found = discover(SAMPLES / "mixed", as_sub_agents=True)

    assert found.ok, found.issues
    assert [a.name for a in found.agent_configs] == ["builder"]
    subs = {s.name: s.sub_agent for s in found.sub_agents}
    assert sorted(subs) == ["doc-writer", "release-helper", "security-reviewer"]
    assert subs["security-reviewer"].agent_type is AgentType.CODE_REVIEW
    assert subs["release-helper"].tool_restrictions == ["WebFetch"]


def test_as_sub_agents_a_permission_mode_the_sub_agent_cannot_carry_is_warned_about() -> None:
    found = discover(SAMPLES / "mixed", as_sub_agents=True)

    assert any(w.field == "front matter: permissionMode" for w in found.warnings)


def test_as_sub_agents_one_name_in_two_files_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "agents" / "a.md", CLAUDE_AGENT.format(name="helper", description="A."))
    write(
        tmp_path / ".claude" / "agents" / "b.md",
        CLAUDE_AGENT.format(name="helper", description="B."),
    )

    [issue] = discover(tmp_path, as_sub_agents=True).issues

    assert "sub-agent 'helper' is defined twice" in issue.reason


def test_a_default_agent_type_applies_to_claude_files_that_name_none() -> None:
    found = discover(SAMPLES / "mixed", agent_type=AgentType.QUALITY_ASSURANCE)
    types = {a.name: a.resource.spec.agent_type for a in found.agent_configs}

    assert types["security-reviewer"] is AgentType.QUALITY_ASSURANCE
    assert types["doc-writer"] is AgentType.DOCUMENTATION  # its own agentType wins
    assert types["builder"] is AgentType.DEVELOPMENT  # YAML says what it is


def test_the_examples_folder_holds_two_configs_and_two_claude_agents_all_valid() -> None:
    found = discover(EXAMPLES)

    assert found.ok, found.issues
    assert found.warnings == []
    assert found.skipped == []
    types = {a.name: a.resource.spec.agent_type for a in found.agent_configs}
    assert types == {
        "developer": AgentType.DEVELOPMENT,
        "platform-engineer": AgentType.INFRASTRUCTURE,
        "code-reviewer": AgentType.CODE_REVIEW,
        "test-writer": AgentType.QUALITY_ASSURANCE,
    }


@pytest.mark.parametrize("name", ["code-reviewer.md", "test-writer.md"])
def test_the_example_claude_agents_keep_their_prompts_and_tools(name: str, tmp_path: Path) -> None:
    folder = tmp_path / ".claude" / "agents"
    folder.mkdir(parents=True)
    shutil.copy(EXAMPLES / ".claude" / "agents" / name, folder / name)

    [agent] = discover(folder).agent_configs

    assert len(agent.resource.spec.specialized_instructions) > 200
    assert "Read" in agent.resource.spec.tools_enabled
