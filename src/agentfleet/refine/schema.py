"""The JSON a refinement agent must answer with, as a strict pydantic model and its schema.

Strict because the answer is agent output: a number given as "3", an unknown field or a
missing acceptance criterion is a mistake to report back to the agent, not to guess around.
`refinement_schema()` is what `--json-schema` (Claude Code) gets and what
`schemas/refinement.schema.json` publishes; a test keeps the two equal.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from ..models.batch import TICKET_ID_PATTERN
from ..models.meta import AgentType, Priority

SCHEMA_ID = "https://agentfleet.dev/schemas/refinement.schema.json"
MAX_FILES = 50

ShortText = Annotated[str, Field(min_length=1, max_length=500)]


class RefinedTicketAnswer(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=False,
        extra="forbid",
        strict=True,
        title="RefinedTicket",
    )

    id: str = Field(pattern=TICKET_ID_PATTERN, description="The raw ticket's id, unchanged.")
    title: str = Field(min_length=1, max_length=120, description="Short and imperative.")
    description: str = Field(
        min_length=1, description="What to build and why, with the context an engineer needs."
    )
    acceptance_criteria: list[ShortText] = Field(
        min_length=1, description="Testable statements; the work is done when all hold."
    )
    complexity: int = Field(ge=1, le=10, description="Effort from 1 (trivial) to 10 (very large).")
    dependencies: list[str] = Field(
        description="Ids of tickets of this batch that must be done first."
    )
    tags: list[ShortText] = Field(description="Short labels.")
    agent_type: AgentType = Field(description="The kind of agent best suited to the work.")
    likely_files: list[str] = Field(
        max_length=MAX_FILES,
        description="Repository-relative paths the work will probably create or change.",
    )
    priority: Priority | None = Field(
        default=None, description="Only when the ticket's priority should change."
    )

    @field_validator("likely_files")
    @classmethod
    def _relative_paths(cls, paths: list[str]) -> list[str]:
        for path in paths:
            parts = path.replace("\\", "/").split("/")
            if not path or path.startswith(("/", "~")) or ".." in parts or "\x00" in path:
                raise ValueError(f"{path!r} is not a path relative to the repository")
            if len(path) > 300:
                raise ValueError(f"{path[:40]!r}... is longer than 300 characters")
        return paths


class RefinementAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, title="Refinement")

    tickets: list[RefinedTicketAnswer] = Field(min_length=1)


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """The schema without `$ref`s: some structured-output implementations do not follow them."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = copy.deepcopy(defs[ref.removeprefix("#/$defs/")])
            extra = {k: v for k, v in node.items() if k != "$ref"}
            return _inline_refs({**target, **extra}, defs)
        return {k: _inline_refs(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(item, defs) for item in node]
    return node


@cache
def _schema() -> dict[str, Any]:
    raw = RefinementAnswer.model_json_schema(by_alias=True)
    schema = _inline_refs(raw, raw.get("$defs", {}))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
    }


def refinement_schema() -> dict[str, Any]:
    """The published JSON Schema of a refinement answer (a fresh copy: callers may edit it)."""
    return copy.deepcopy(_schema())
