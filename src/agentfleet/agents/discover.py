"""Find every agent definition under a folder and check all of them before any is stored.

A folder may hold agentfleet AgentConfig manifests and Claude Code agent files side by side;
both are read, every problem in every file is collected (one bad file does not hide the
next), and the caller stores nothing unless the whole set is valid.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..models.agent import AgentConfig, SubAgent
from ..models.loader import ManifestError, ManifestIssue, parse_document
from ..models.meta import API_VERSION, AgentType
from .claude_files import (
    FRONT_MATTER,
    ClaudeAgentFile,
    read_claude_agent,
    sub_agent_warnings,
    to_agent_config,
    to_sub_agent,
)

YAML_SUFFIXES = (".yaml", ".yml")
_SKIPPED_FOLDERS = frozenset({"node_modules", "__pycache__"})
_MENTIONS_AGENT_CONFIG = re.compile(r"^\s*kind:\s*[\"']?AgentConfig\b", re.MULTILINE)


@dataclass(frozen=True)
class Skipped:
    """A document or file that was read and set aside: said so, so nothing vanishes unseen."""

    file: str
    document: int | None
    reason: str

    def __str__(self) -> str:
        where = self.file if self.document is None else f"{self.file} (document {self.document})"
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class FoundAgent:
    resource: AgentConfig
    file: str
    document: int | None
    """None for a Claude agent file, which holds one agent and no documents."""

    @property
    def name(self) -> str:
        return self.resource.name

    @property
    def where(self) -> str:
        return self.file if self.document is None else f"{self.file} (document {self.document})"


@dataclass(frozen=True)
class FoundSubAgent:
    name: str
    sub_agent: SubAgent
    file: str


@dataclass
class Discovery:
    """What a folder holds, checked: use it only when `issues` is empty."""

    directory: Path
    agent_configs: list[FoundAgent] = field(default_factory=list)
    sub_agents: list[FoundSubAgent] = field(default_factory=list)
    claude_agents: list[ClaudeAgentFile] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    issues: list[ManifestIssue] = field(default_factory=list)
    warnings: list[ManifestIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.issues

    @property
    def empty(self) -> bool:
        return not self.agent_configs and not self.sub_agents


def is_claude_agents_folder(path: Path) -> bool:
    resolved = path.resolve()
    return resolved.name == "agents" and resolved.parent.name == ".claude"


def _walk(directory: Path) -> Iterator[Path]:
    """Files below `directory`, relative to it, in a stable order.

    Hidden folders (.git, .venv, .agentfleet) are left out, but not `.claude`: that is where
    Claude Code keeps its agents.
    """
    for root, folders, files in os.walk(directory):
        folders[:] = sorted(
            f
            for f in folders
            if f not in _SKIPPED_FOLDERS and (not f.startswith(".") or f == ".claude")
        )
        base = Path(root).relative_to(directory)
        for name in sorted(files):
            yield base / name


def _is_claude_agent_file(rel: Path, inside_claude_agents: bool) -> bool:
    if rel.suffix != ".md":
        return False
    if inside_claude_agents or rel.parent == Path("agents"):
        return True
    parts = rel.parts[:-1]
    return any(parts[i : i + 2] == (".claude", "agents") for i in range(len(parts) - 1))


def _documents(path: Path, shown: str, found: Discovery) -> list[Any]:
    """The YAML documents of a file; a file that cannot be read is an error only if it may
    have held an AgentConfig (a Helm template is not valid YAML, and not an agent either)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        found.issues.append(ManifestIssue(shown, None, None, f"cannot read: {exc}"))
        return []
    try:
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        if not _MENTIONS_AGENT_CONFIG.search(text):
            found.skipped.append(Skipped(shown, None, "not valid YAML, and names no AgentConfig"))
            return []
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        found.issues.append(ManifestIssue(shown, None, None, f"invalid YAML{where}: {problem}"))
        return []


def _read_yaml(path: Path, shown: str, found: Discovery) -> None:
    for index, doc in enumerate(_documents(path, shown, found), start=1):
        if doc is None:
            continue
        kind = doc.get("kind") if isinstance(doc, dict) else None
        if kind != AgentConfig.KIND:
            what = f"kind {kind}" if isinstance(kind, str) else "no kind"
            found.skipped.append(Skipped(shown, index, f"{what}: not an AgentConfig"))
            continue
        assert isinstance(doc, dict)
        if doc.get("apiVersion") != API_VERSION:
            found.skipped.append(
                Skipped(
                    shown,
                    index,
                    f"apiVersion {doc.get('apiVersion')!r}: not an agentfleet AgentConfig",
                )
            )
            continue
        try:
            resource = parse_document(doc, shown, index)
        except ManifestError as exc:
            found.issues.extend(exc.issues)
            continue
        assert isinstance(resource, AgentConfig)
        found.agent_configs.append(FoundAgent(resource, shown, index))


def _convert(found: Discovery, agent_type: AgentType | None, as_sub_agents: bool) -> None:
    for claude in found.claude_agents:
        try:
            if as_sub_agents:
                sub = to_sub_agent(claude, agent_type)
                found.sub_agents.append(FoundSubAgent(claude.name, sub, claude.file))
                found.warnings.extend(sub_agent_warnings(claude))
            else:
                config = to_agent_config(claude, agent_type)
                found.agent_configs.append(FoundAgent(config, claude.file, None))
        except ManifestError as exc:
            found.issues.extend(exc.issues)


def _check_duplicates(found: Discovery) -> None:
    """Two files defining one name is an error that names both: neither silently wins."""
    agents: dict[str, FoundAgent] = {}
    for agent in found.agent_configs:
        first = agents.setdefault(agent.name, agent)
        if first is not agent:
            field_name = "metadata.name" if agent.document is not None else f"{FRONT_MATTER}: name"
            found.issues.append(
                ManifestIssue(
                    agent.file,
                    agent.document,
                    field_name,
                    f"AgentConfig {agent.name!r} is defined twice (first in {first.where})",
                )
            )
    subs: dict[str, FoundSubAgent] = {}
    for sub in found.sub_agents:
        first_sub = subs.setdefault(sub.name, sub)
        if first_sub is not sub:
            found.issues.append(
                ManifestIssue(
                    sub.file,
                    None,
                    f"{FRONT_MATTER}: name",
                    f"sub-agent {sub.name!r} is defined twice (first in {first_sub.file})",
                )
            )


def discover(
    directory: Path, *, agent_type: AgentType | None = None, as_sub_agents: bool = False
) -> Discovery:
    """Every AgentConfig manifest and Claude agent file under `directory`, all checked.

    `agent_type` is the type of Claude agents whose file names none (instead of a guess);
    `as_sub_agents` makes them sub-agents rather than AgentConfigs. Files are named as
    `directory` was given, joined with their path below it, so a user sees paths they typed.
    """
    found = Discovery(directory)
    if not directory.is_dir():
        what = "not a folder" if directory.exists() else "no such folder"
        found.issues.append(ManifestIssue(str(directory), None, None, what))
        return found
    inside_claude_agents = is_claude_agents_folder(directory)
    for rel in _walk(directory):
        path = directory / rel
        shown = str(path)
        if rel.suffix in YAML_SUFFIXES:
            _read_yaml(path, shown, found)
        elif _is_claude_agent_file(rel, inside_claude_agents):
            if rel.name.lower() == "readme.md":
                found.skipped.append(Skipped(shown, None, "a README, not an agent file"))
                continue
            try:
                claude = read_claude_agent(path, shown)
            except ManifestError as exc:
                found.issues.extend(exc.issues)
                continue
            found.claude_agents.append(claude)
            found.warnings.extend(claude.warnings)
    _convert(found, agent_type, as_sub_agents)
    _check_duplicates(found)
    return found
