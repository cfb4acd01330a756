"""Claude Code's own agent files (`.claude/agents/*.md`) as AgentConfigs or sub-agents.

Teams already describe their agents this way for Claude Code; reading the same files saves
them from writing every prompt twice. A file is YAML front matter (`name`, `description`,
`tools`, `model`, ...) and a markdown body, the agent's prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from ..models.agent import PERMISSION_MODES, AgentConfig, ExecutorType, SubAgent
from ..models.loader import ManifestError, ManifestIssue
from ..models.meta import API_VERSION, AgentType, ObjectName

DESCRIPTION_ANNOTATION = "agentfleet.dev/description"
"""Where an AgentConfig made from a Claude file keeps its description (the spec has none)."""

FRONT_MATTER = "front matter"
INHERIT_MODEL = "inherit"

_MAPPED_KEYS = frozenset(
    {"name", "description", "tools", "disallowedTools", "model", "permissionMode", "agentType"}
)
_NAME = TypeAdapter(ObjectName)

# Ordered: the first rule any word matches decides, so "test-reviewer" is a reviewer.
_TYPE_RULES: tuple[tuple[AgentType, re.Pattern[str]], ...] = (
    (AgentType.CODE_REVIEW, re.compile(r"review")),
    (AgentType.QUALITY_ASSURANCE, re.compile(r"test|qa$")),
    # "docker" is infrastructure, not documentation: hence no bare "doc" prefix.
    (AgentType.DOCUMENTATION, re.compile(r"docs?$|docstrings?$|document")),
    (AgentType.INFRASTRUCTURE, re.compile(r"infra|deploy|devops$|ops$")),
)


@dataclass(frozen=True)
class ClaudeAgentFile:
    """One Claude agent file, checked, before it is decided what it becomes.

    `tools` and `disallowed_tools` are None when the file does not say (Claude Code then
    allows every tool), which is not the same as an empty list.
    """

    file: str
    name: str
    description: str
    prompt: str
    tools: tuple[str, ...] | None = None
    disallowed_tools: tuple[str, ...] | None = None
    model: str | None = None
    permission_mode: str | None = None
    agent_type: AgentType | None = None
    warnings: tuple[ManifestIssue, ...] = field(default=())

    def resolved_type(self, default: AgentType | None = None) -> AgentType:
        """The file's own `agentType`, else the caller's default, else a guess from its words.

        The file is the most specific statement, so it wins over a default given for a whole
        folder; the guess is the last resort.
        """
        return self.agent_type or default or infer_agent_type(self.name, self.description)


def infer_agent_type(name: str, description: str = "") -> AgentType:
    """The agent type the words suggest; the name speaks first, the description second.

    A description mentions many things ("reviews code and checks the tests"); the name is
    what its author chose to call it, so it is the stronger hint.
    """
    for text in (name, description):
        words = re.findall(r"[a-z0-9]+", text.lower())
        for agent_type, pattern in _TYPE_RULES:
            if any(pattern.match(word) for word in words):
                return agent_type
    return AgentType.DEVELOPMENT


def split_tools(value: str) -> list[str]:
    """Split a comma-separated tool list, keeping `Bash(git diff:*, git log:*)` in one piece."""
    tools: list[str] = []
    depth = 0
    current = ""
    for char in value:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(depth - 1, 0)
        if char == "," and depth == 0:
            tools.append(current.strip())
            current = ""
        else:
            current += char
    tools.append(current.strip())
    return [tool for tool in tools if tool]


def _front_matter(text: str, file: str) -> tuple[str, str, int]:
    """The front matter's text, the body, and the file line the front matter starts on."""
    lines = text.removeprefix("\ufeff").splitlines(keepends=True)
    if not lines or lines[0].rstrip() != "---":
        raise ManifestError(
            [ManifestIssue(file, None, FRONT_MATTER, "missing: the file must start with '---'")]
        )
    for index, line in enumerate(lines[1:], start=1):
        if line.rstrip() == "---":
            return "".join(lines[1:index]), "".join(lines[index + 1 :]), 2
    raise ManifestError(
        [ManifestIssue(file, None, FRONT_MATTER, "not closed: no '---' line after it")]
    )


def _tool_list(value: Any, key: str, file: str, issues: list[ManifestIssue]) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(split_tools(value))
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(item.strip() for item in value if item.strip())
    issues.append(
        ManifestIssue(
            file,
            None,
            f"{FRONT_MATTER}: {key}",
            f"expected a comma-separated string or a list of strings, got {value!r}",
        )
    )
    return ()


def _string(
    meta: dict[str, Any], key: str, file: str, issues: list[ManifestIssue], required: bool
) -> str | None:
    value = meta.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            issues.append(
                ManifestIssue(file, None, FRONT_MATTER, f"missing required field {key!r}")
            )
        return None
    if not isinstance(value, str):
        issues.append(
            ManifestIssue(file, None, f"{FRONT_MATTER}: {key}", f"expected a string, got {value!r}")
        )
        return None
    return value.strip()


def _check_name(name: str, file: str, issues: list[ManifestIssue]) -> None:
    try:
        _NAME.validate_python(name)
    except ValidationError as exc:
        reason = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        fixed = re.sub(r"[^a-z0-9.-]+", "-", name.lower()).strip("-.")
        if fixed and fixed != name:
            reason += f" (e.g. {fixed!r})"
        issues.append(ManifestIssue(file, None, f"{FRONT_MATTER}: name", reason))


def _agent_type(value: Any, file: str, issues: list[ManifestIssue]) -> AgentType | None:
    if value is None:
        return None
    by_word = {t.value.lower(): t for t in AgentType}
    found = by_word.get(value.lower()) if isinstance(value, str) else None
    if found is None:
        allowed = ", ".join(t.value for t in AgentType)
        issues.append(
            ManifestIssue(
                file, None, f"{FRONT_MATTER}: agentType", f"{value!r} is not one of {allowed}"
            )
        )
    return found


def parse_claude_agent(text: str, file: str) -> ClaudeAgentFile:
    """Check one file's text; raises ManifestError with every issue in it, not just the first."""
    raw, body, first_line = _front_matter(text, file)
    try:
        meta = yaml.safe_load(raw) if raw.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + first_line}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(
            [ManifestIssue(file, None, FRONT_MATTER, f"invalid YAML{where}: {problem}")]
        ) from exc
    if not isinstance(meta, dict):
        raise ManifestError(
            [
                ManifestIssue(
                    file, None, FRONT_MATTER, f"expected a mapping, got {type(meta).__name__}"
                )
            ]
        )
    issues: list[ManifestIssue] = []
    warnings: list[ManifestIssue] = []
    name = _string(meta, "name", file, issues, required=True)
    if name is not None:
        _check_name(name, file, issues)
    description = _string(meta, "description", file, issues, required=True)
    tools = meta.get("tools")
    disallowed = meta.get("disallowedTools")
    model = _string(meta, "model", file, issues, required=False)
    permission_mode = _string(meta, "permissionMode", file, issues, required=False)
    modes = PERMISSION_MODES[ExecutorType.CLAUDE_CODE]
    if permission_mode is not None and permission_mode not in modes:
        issues.append(
            ManifestIssue(
                file,
                None,
                f"{FRONT_MATTER}: permissionMode",
                f"{permission_mode!r} is not one of {', '.join(modes)}",
            )
        )
    agent_type = _agent_type(meta.get("agentType"), file, issues)
    parsed_tools = _tool_list(tools, "tools", file, issues) if tools is not None else None
    parsed_disallowed = (
        _tool_list(disallowed, "disallowedTools", file, issues) if disallowed is not None else None
    )
    for key in sorted(set(meta) - _MAPPED_KEYS, key=str):
        warnings.append(
            ManifestIssue(file, None, f"{FRONT_MATTER}: {key}", "not used by agentfleet; ignored")
        )
    prompt = body.strip()
    if not prompt:
        warnings.append(ManifestIssue(file, None, "body", "empty: the agent gets no prompt"))
    if issues:
        raise ManifestError(issues)
    assert name is not None
    assert description is not None
    return ClaudeAgentFile(
        file=file,
        name=name,
        description=description,
        prompt=prompt,
        tools=parsed_tools,
        disallowed_tools=parsed_disallowed,
        model=None if model == INHERIT_MODEL else model,
        permission_mode=permission_mode,
        agent_type=agent_type,
        warnings=tuple(warnings),
    )


def read_claude_agent(path: Path, file: str | None = None) -> ClaudeAgentFile:
    """`parse_claude_agent` on a file; `file` is how errors name it (default: the path)."""
    shown = file if file is not None else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError([ManifestIssue(shown, None, None, f"cannot read: {exc}")]) from exc
    return parse_claude_agent(text, shown)


def _validation_issues(exc: ValidationError, file: str) -> list[ManifestIssue]:
    """Whatever the model still refuses, named as the file's front matter, the user's words."""
    return [
        ManifestIssue(
            file,
            None,
            FRONT_MATTER,
            f"{'.'.join(str(p) for p in err['loc'])}: "
            + str(err["msg"]).removeprefix("Value error, "),
        )
        for err in exc.errors()
    ]


def to_agent_config(agent: ClaudeAgentFile, default_type: AgentType | None = None) -> AgentConfig:
    """A claude-code AgentConfig whose specialised instructions are the file's prompt."""
    executor: dict[str, Any] = {"type": ExecutorType.CLAUDE_CODE.value}
    if agent.model is not None:
        executor["model"] = agent.model
    if agent.permission_mode is not None:
        executor["permissionMode"] = agent.permission_mode
    body = {
        "apiVersion": API_VERSION,
        "kind": AgentConfig.KIND,
        "metadata": {
            "name": agent.name,
            "annotations": {DESCRIPTION_ANNOTATION: agent.description},
        },
        "spec": {
            "agentType": agent.resolved_type(default_type).value,
            "baseExecutor": executor,
            "specializedInstructions": agent.prompt,
            "toolsEnabled": list(agent.tools or ()),
            "toolRestrictions": list(agent.disallowed_tools or ()),
        },
    }
    try:
        return AgentConfig.model_validate(body)
    except ValidationError as exc:
        raise ManifestError(_validation_issues(exc, agent.file)) from exc


def to_sub_agent(agent: ClaudeAgentFile, default_type: AgentType | None = None) -> SubAgent:
    """A sub-agent carrying the file's description, prompt, tools and model."""
    try:
        return SubAgent(
            agent_type=agent.resolved_type(default_type),
            description=agent.description,
            specialized_prompt=agent.prompt,
            tools=list(agent.tools or ()),
            tool_restrictions=list(agent.disallowed_tools or ()),
            model=agent.model,
        )
    except ValidationError as exc:
        raise ManifestError(_validation_issues(exc, agent.file)) from exc


def sub_agent_warnings(agent: ClaudeAgentFile) -> list[ManifestIssue]:
    """What a sub-agent cannot carry: said aloud rather than dropped in silence."""
    if agent.permission_mode is None:
        return []
    return [
        ManifestIssue(
            agent.file,
            None,
            f"{FRONT_MATTER}: permissionMode",
            "a sub-agent has no permission mode of its own (its parent's applies); ignored",
        )
    ]
