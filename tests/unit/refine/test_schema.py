"""The published refinement schema: what agents are asked for, and what the parser accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from agentfleet.refine.parse import parse_refinement
from agentfleet.refine.schema import refinement_schema

PUBLISHED = Path(__file__).resolve().parents[3] / "schemas" / "refinement.schema.json"


def entry(**fields: Any) -> dict[str, Any]:
    return {
        "id": "T-1",
        "title": "Add login",
        "description": "Users log in with email.",
        "acceptanceCriteria": ["a user can log in"],
        "complexity": 3,
        "dependencies": [],
        "tags": ["auth"],
        "agentType": "Development",
        "likelyFiles": ["app/login.py"],
        **fields,
    }


def test_the_published_schema_file_is_the_one_generated_from_the_model() -> None:
    published = json.loads(PUBLISHED.read_text(encoding="utf-8"))

    assert published == refinement_schema(), (
        "schemas/refinement.schema.json is stale: regenerate it from agentfleet.refine.schema"
    )


def test_the_schema_is_valid_draft_2020_12_without_references() -> None:
    schema = refinement_schema()

    Draft202012Validator.check_schema(schema)
    assert "$ref" not in json.dumps(schema), "structured-output engines may not follow $ref"


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"priority": "high"},
        {"dependencies": ["T-2"]},
    ],
)
def test_what_the_schema_accepts_the_parser_accepts(fields: dict[str, Any]) -> None:
    answer = {"tickets": [entry(**fields)]}
    Draft202012Validator(refinement_schema()).validate(answer)

    parsed = parse_refinement(json.dumps(answer), requested=["T-1"], known={"T-1", "T-2"})

    assert parsed.errors == {}


@given(
    st.dictionaries(
        st.sampled_from(
            ["title", "complexity", "agentType", "acceptanceCriteria", "likelyFiles", "extra"]
        ),
        st.one_of(st.none(), st.integers(-5, 20), st.text(max_size=5), st.lists(st.text())),
        min_size=1,
    )
)
def test_what_the_schema_rejects_the_parser_rejects(changes: dict[str, Any]) -> None:
    candidate = entry(**changes)
    schema_ok = Draft202012Validator(refinement_schema()).is_valid({"tickets": [candidate]})
    parsed = parse_refinement(
        json.dumps({"tickets": [candidate]}), requested=["T-1"], known={"T-1"}
    )

    if not schema_ok:
        assert "T-1" in parsed.errors
