"""Claude Code agent files become AgentConfigs or sub-agents, or errors naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentfleet.agents.claude_files import (
    DESCRIPTION_ANNOTATION,
    ClaudeAgentFile,
    infer_agent_type,
    parse_claude_agent,
    read_claude_agent,
    split_tools,
    sub_agent_warnings,
    to_agent_config,
    to_sub_agent,
)
from agentfleet.models.agent import ExecutorType
from agentfleet.models.loader import ManifestError
from agentfleet.models.meta import AgentType

FILE = "agents/reviewer.md"


def agent_file(front: str, body: str = "You review code.\n") -> str:
    return f"---\n{front.strip()}\n---\n{body}"


def parse(front: str, body: str = "You review code.\n") -> ClaudeAgentFile:
    return parse_claude_agent(agent_file(front, body), FILE)


def errors(text: str) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        parse_claude_agent(text, FILE)
    return [str(issue) for issue in caught.value.issues]


MINIMAL = "name: reviewer\ndescription: Reviews code."


def test_a_minimal_file_gives_name_description_and_the_body_as_prompt() -> None:
    parsed = parse(MINIMAL, "\n\nYou review code.\n\nBe brief.\n\n")

    assert parsed.name == "reviewer"
    assert parsed.description == "Reviews code."
    assert parsed.prompt == "You review code.\n\nBe brief."
    assert parsed.file == FILE
    assert parsed.warnings == ()


def test_tools_absent_means_unsaid_which_differs_from_an_empty_list() -> None:
    assert parse(MINIMAL).tools is None
    assert parse(MINIMAL + "\ntools: []").tools == ()


def test_tools_as_a_comma_separated_string_are_split_and_trimmed() -> None:
    parsed = parse(MINIMAL + "\ntools: Read,  Grep , Glob,")

    assert parsed.tools == ("Read", "Grep", "Glob")


def test_tools_as_a_yaml_list_are_kept_in_order() -> None:
    parsed = parse(MINIMAL + "\ntools:\n  - Read\n  - Bash(pytest:*)")

    assert parsed.tools == ("Read", "Bash(pytest:*)")


def test_a_comma_inside_a_tool_pattern_does_not_split_it() -> None:
    assert split_tools("Read, Bash(git diff:*, git log:*), Edit") == [
        "Read",
        "Bash(git diff:*, git log:*)",
        "Edit",
    ]


def test_disallowed_tools_are_read_like_tools() -> None:
    assert parse(MINIMAL + "\ndisallowedTools: WebFetch, Bash").disallowed_tools == (
        "WebFetch",
        "Bash",
    )


def test_tools_of_another_shape_are_an_error_naming_the_field() -> None:
    assert errors(agent_file(MINIMAL + "\ntools: 3")) == [
        f"{FILE}: front matter: tools: expected a comma-separated string or a list of strings, "
        "got 3"
    ]


def test_model_inherit_means_no_model_of_its_own() -> None:
    assert parse(MINIMAL + "\nmodel: inherit").model is None


def test_a_model_alias_or_id_is_kept_as_written() -> None:
    assert parse(MINIMAL + "\nmodel: opus").model == "opus"
    assert parse(MINIMAL + "\nmodel: claude-sonnet-4-5").model == "claude-sonnet-4-5"


def test_a_missing_description_is_named_as_the_user_sees_it() -> None:
    assert errors(agent_file("name: reviewer")) == [
        f"{FILE}: front matter: missing required field 'description'"
    ]


def test_every_problem_in_one_file_is_reported_not_just_the_first() -> None:
    found = errors(agent_file("tools: 7\nagentType: Reviewer"))

    assert found == [
        f"{FILE}: front matter: missing required field 'name'",
        f"{FILE}: front matter: missing required field 'description'",
        f"{FILE}: front matter: agentType: 'Reviewer' is not one of Development, "
        "QualityAssurance, CodeReview, Documentation, Infrastructure",
        f"{FILE}: front matter: tools: expected a comma-separated string or a list of strings, "
        "got 7",
    ]


def test_an_invalid_name_is_refused_not_lowercased_and_a_valid_one_is_suggested() -> None:
    [message] = errors(agent_file("name: Code_Reviewer\ndescription: Reviews code."))

    assert message.startswith(f"{FILE}: front matter: name: 'Code_Reviewer' is not a valid name")
    assert message.endswith("(e.g. 'code-reviewer')")


def test_a_name_that_is_not_a_string_is_an_error() -> None:
    assert errors(agent_file("name: 42\ndescription: d")) == [
        f"{FILE}: front matter: name: expected a string, got 42"
    ]


def test_a_file_without_front_matter_is_an_error() -> None:
    assert errors("You review code.\n") == [
        f"{FILE}: front matter: missing: the file must start with '---'"
    ]


def test_front_matter_never_closed_is_an_error() -> None:
    assert errors("---\nname: reviewer\ndescription: d\n") == [
        f"{FILE}: front matter: not closed: no '---' line after it"
    ]


def test_invalid_yaml_in_the_front_matter_names_the_line_of_the_file() -> None:
    [message] = errors("---\nname: reviewer\ndescription: : :\n  bad: [\n---\nbody\n")

    assert message.startswith(f"{FILE}: front matter: invalid YAML at line 3")


def test_front_matter_that_is_not_a_mapping_is_an_error() -> None:
    assert errors("---\n- a\n- b\n---\nbody\n") == [
        f"{FILE}: front matter: expected a mapping, got list"
    ]


def test_a_byte_order_mark_before_the_front_matter_is_tolerated() -> None:
    assert parse_claude_agent("\ufeff" + agent_file(MINIMAL), FILE).name == "reviewer"


def test_an_unknown_permission_mode_is_an_error_listing_claude_codes_modes() -> None:
    [message] = errors(agent_file(MINIMAL + "\npermissionMode: yolo"))

    assert message.startswith(f"{FILE}: front matter: permissionMode: 'yolo' is not one of")
    assert "acceptEdits" in message


def test_keys_agentfleet_does_not_use_are_warnings_not_errors() -> None:
    parsed = parse(MINIMAL + "\ncolor: green\nskills: [pdf]")

    assert [str(w) for w in parsed.warnings] == [
        f"{FILE}: front matter: color: not used by agentfleet; ignored",
        f"{FILE}: front matter: skills: not used by agentfleet; ignored",
    ]


def test_an_empty_body_is_a_warning() -> None:
    assert [str(w) for w in parse(MINIMAL, "\n").warnings] == [
        f"{FILE}: body: empty: the agent gets no prompt"
    ]


def test_agent_type_in_the_front_matter_is_read_case_insensitively() -> None:
    assert parse(MINIMAL + "\nagentType: codereview").agent_type is AgentType.CODE_REVIEW


@pytest.mark.parametrize(
    ("name", "description", "expected"),
    [
        ("code-reviewer", "", AgentType.CODE_REVIEW),
        ("test-writer", "", AgentType.QUALITY_ASSURANCE),
        ("qa", "", AgentType.QUALITY_ASSURANCE),
        ("api-docs", "", AgentType.DOCUMENTATION),
        ("documenter", "", AgentType.DOCUMENTATION),
        ("deployer", "", AgentType.INFRASTRUCTURE),
        ("infra-bot", "", AgentType.INFRASTRUCTURE),
        ("k8s-ops", "", AgentType.INFRASTRUCTURE),
        ("devops", "", AgentType.INFRASTRUCTURE),
        ("docker-builder", "", AgentType.DEVELOPMENT),
        ("backend", "Writes the API handlers.", AgentType.DEVELOPMENT),
        ("helper", "Writes docs for every module.", AgentType.DOCUMENTATION),
        ("helper", "Reviews pull requests.", AgentType.CODE_REVIEW),
    ],
)
def test_agent_type_is_inferred_from_the_words_of_name_and_description(
    name: str, description: str, expected: AgentType
) -> None:
    assert infer_agent_type(name, description) is expected


def test_the_name_outweighs_the_description_when_inferring_the_type() -> None:
    assert infer_agent_type("test-writer", "Reviews coverage.") is AgentType.QUALITY_ASSURANCE


def test_the_files_own_agent_type_beats_a_default_which_beats_the_guess() -> None:
    guessed = parse(MINIMAL)
    explicit = parse(MINIMAL + "\nagentType: Documentation")

    assert guessed.resolved_type() is AgentType.CODE_REVIEW
    assert guessed.resolved_type(AgentType.DEVELOPMENT) is AgentType.DEVELOPMENT
    assert explicit.resolved_type(AgentType.DEVELOPMENT) is AgentType.DOCUMENTATION


FULL = parse(
    "name: reviewer\n"
    "description: Reviews code.\n"
    "tools: Read, Grep\n"
    "disallowedTools: [WebFetch]\n"
    "model: opus\n"
    "permissionMode: plan",
    "Check the diff.\n",
)


def test_as_an_agent_config_it_runs_claude_code_with_the_files_settings() -> None:
    config = to_agent_config(FULL)

    assert config.name == "reviewer"
    assert config.metadata.annotations == {DESCRIPTION_ANNOTATION: "Reviews code."}
    spec = config.spec
    assert spec.agent_type is AgentType.CODE_REVIEW
    assert spec.base_executor.type is ExecutorType.CLAUDE_CODE
    assert spec.base_executor.model == "opus"
    assert spec.base_executor.permission_mode == "plan"
    assert spec.specialized_instructions == "Check the diff."
    assert spec.tools_enabled == ["Read", "Grep"]
    assert spec.tool_restrictions == ["WebFetch"]


def test_as_an_agent_config_an_inherited_model_leaves_the_executor_model_unset() -> None:
    config = to_agent_config(parse(MINIMAL + "\nmodel: inherit"))

    assert config.spec.base_executor.model is None
    assert config.spec.tools_enabled == []


def test_as_a_sub_agent_it_carries_description_prompt_tools_and_model() -> None:
    sub = to_sub_agent(FULL, AgentType.DEVELOPMENT)

    assert sub.agent_type is AgentType.DEVELOPMENT
    assert sub.description == "Reviews code."
    assert sub.specialized_prompt == "Check the diff."
    assert sub.tools == ["Read", "Grep"]
    assert sub.tool_restrictions == ["WebFetch"]
    assert sub.model == "opus"


def test_a_permission_mode_a_sub_agent_cannot_carry_is_warned_about() -> None:
    [warning] = sub_agent_warnings(FULL)

    assert str(warning).startswith(f"{FILE}: front matter: permissionMode: a sub-agent has no")
    assert sub_agent_warnings(parse(MINIMAL)) == []


def test_reading_a_file_names_it_as_the_caller_shows_it(tmp_path: Path) -> None:
    path = tmp_path / "reviewer.md"
    path.write_text(agent_file(MINIMAL), encoding="utf-8")

    assert read_claude_agent(path, "shown/reviewer.md").file == "shown/reviewer.md"
    assert read_claude_agent(path).file == str(path)


def test_a_file_that_is_not_utf8_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "reviewer.md"
    path.write_bytes(b"---\nname: \xff\n---\n")

    with pytest.raises(ManifestError, match=r"reviewer\.md: cannot read"):
        read_claude_agent(path)
