"""The registry answers the core's questions about agents the same way for the same snapshot."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentfleet.agents.registry import AgentRegistry
from agentfleet.models.agent import AgentConfig
from agentfleet.models.meta import AgentType


def config(name: str, agent_type: AgentType, generation: int | None = None) -> AgentConfig:
    metadata: dict[str, Any] = {"name": name}
    if generation is not None:
        metadata["generation"] = generation
    return AgentConfig.model_validate(
        {
            "metadata": metadata,
            "spec": {"agentType": agent_type.value, "baseExecutor": {"type": "claude-code"}},
        }
    )


def registry(*agents: AgentConfig) -> AgentRegistry:
    return AgentRegistry({a.name: a for a in agents})


FLEET = registry(
    config("zed-dev", AgentType.DEVELOPMENT, 3),
    config("alpha-dev", AgentType.DEVELOPMENT),
    config("mid-dev", AgentType.DEVELOPMENT),
    config("qa", AgentType.QUALITY_ASSURANCE),
)


def test_of_type_lists_names_sorted_whatever_the_insertion_order() -> None:
    assert FLEET.of_type(AgentType.DEVELOPMENT) == ["alpha-dev", "mid-dev", "zed-dev"]


def test_of_type_is_empty_for_a_type_no_agent_has() -> None:
    assert FLEET.of_type(AgentType.DOCUMENTATION) == []


def test_of_type_returns_a_copy_the_caller_may_change() -> None:
    FLEET.of_type(AgentType.DEVELOPMENT).clear()

    assert FLEET.of_type(AgentType.DEVELOPMENT) == ["alpha-dev", "mid-dev", "zed-dev"]


def test_next_of_type_starts_with_the_first_by_name() -> None:
    assert FLEET.next_of_type(AgentType.DEVELOPMENT, ()) == "alpha-dev"


def test_next_of_type_skips_what_was_tried_in_any_order() -> None:
    assert FLEET.next_of_type(AgentType.DEVELOPMENT, {"mid-dev", "alpha-dev"}) == "zed-dev"


def test_next_of_type_is_none_once_every_agent_of_the_type_was_tried() -> None:
    tried = ["zed-dev", "alpha-dev", "mid-dev"]

    assert FLEET.next_of_type(AgentType.DEVELOPMENT, tried) is None


def test_next_of_type_ignores_tried_names_of_other_types_or_unknown_agents() -> None:
    assert FLEET.next_of_type(AgentType.DEVELOPMENT, ["qa", "deleted-agent"]) == "alpha-dev"


def test_get_returns_the_config_or_none() -> None:
    found = FLEET.get("qa")

    assert found is not None
    assert found.spec.agent_type is AgentType.QUALITY_ASSURANCE
    assert FLEET.get("nobody") is None


def test_generation_is_the_stored_generation() -> None:
    assert FLEET.generation("zed-dev") == 3


def test_generation_is_zero_for_a_config_no_store_has_accepted_yet() -> None:
    assert FLEET.generation("alpha-dev") == 0


def test_generation_of_an_unknown_agent_raises_naming_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"nobody.*alpha-dev, mid-dev, qa, zed-dev"):
        FLEET.generation("nobody")


def test_the_view_does_not_move_when_the_source_mapping_changes() -> None:
    source = {"a": config("a", AgentType.DEVELOPMENT)}
    view = AgentRegistry(source)

    source["b"] = config("b", AgentType.DEVELOPMENT)

    assert view.of_type(AgentType.DEVELOPMENT) == ["a"]
    assert "b" not in view


def test_of_builds_the_mapping_from_the_resources_own_names() -> None:
    view = AgentRegistry.of(
        [config("b", AgentType.CODE_REVIEW), config("a", AgentType.CODE_REVIEW)]
    )

    assert view.names() == ["a", "b"]
    assert list(view) == ["a", "b"]
    assert len(view) == 2


NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,8}[a-z0-9]", fullmatch=True)
FLEETS = st.dictionaries(NAMES, st.sampled_from(list(AgentType)), max_size=12)


@given(fleet=FLEETS, agent_type=st.sampled_from(list(AgentType)))
def test_retrying_with_next_of_type_never_repeats_and_covers_every_agent_of_the_type(
    fleet: dict[str, AgentType], agent_type: AgentType
) -> None:
    view = AgentRegistry({name: config(name, kind) for name, kind in fleet.items()})
    tried: list[str] = []

    while (following := view.next_of_type(agent_type, tried)) is not None:
        assert following not in tried
        tried.append(following)
        assert len(tried) <= len(fleet), "next_of_type went on past the agents there are"

    assert tried == sorted(n for n, kind in fleet.items() if kind is agent_type)
    assert tried == view.of_type(agent_type)


@given(
    fleet=FLEETS,
    agent_type=st.sampled_from(list(AgentType)),
    tried=st.sets(NAMES, max_size=12),
)
def test_next_of_type_is_always_an_untried_agent_of_that_type_or_none_when_none_is_left(
    fleet: dict[str, AgentType], agent_type: AgentType, tried: set[str]
) -> None:
    view = AgentRegistry({name: config(name, kind) for name, kind in fleet.items()})
    untried = sorted(n for n, kind in fleet.items() if kind is agent_type and n not in tried)

    assert view.next_of_type(agent_type, tried) == (untried[0] if untried else None)
