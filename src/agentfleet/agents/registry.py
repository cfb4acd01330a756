"""A read-only view over the AgentConfigs known at one instant.

The core asks it which agents may take a stage and which one to try next; it is built from a
snapshot (a mapping), so it does no I/O and gives the same answers for the same snapshot.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping

from ..models.agent import AgentConfig
from ..models.meta import AgentType


class AgentRegistry:
    """Agents by name; every listing is sorted by name so retries walk a stable order."""

    def __init__(self, agents: Mapping[str, AgentConfig]) -> None:
        # A private copy: the caller's snapshot may be mutated later, this view must not move.
        self._agents: dict[str, AgentConfig] = dict(agents)
        self._by_type: dict[AgentType, list[str]] = {}
        for name in sorted(self._agents):
            self._by_type.setdefault(self._agents[name].spec.agent_type, []).append(name)

    @classmethod
    def of(cls, agents: Collection[AgentConfig]) -> AgentRegistry:
        """From resources as a store lists them; their own names are the keys."""
        return cls({agent.name: agent for agent in agents})

    def __contains__(self, name: object) -> bool:
        return name in self._agents

    def __len__(self) -> int:
        return len(self._agents)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._agents))

    def names(self) -> list[str]:
        return sorted(self._agents)

    def get(self, name: str) -> AgentConfig | None:
        return self._agents.get(name)

    def of_type(self, agent_type: AgentType) -> list[str]:
        return list(self._by_type.get(agent_type, ()))

    def next_of_type(self, agent_type: AgentType, tried: Collection[str]) -> str | None:
        """The first agent of `agent_type`, by name, not in `tried`; None once all were tried.

        Names in `tried` that are not of this type (an agent since deleted, or one named
        explicitly by a stage) are simply not candidates; they never make this fail.
        """
        return next((name for name in self._by_type.get(agent_type, ()) if name not in tried), None)

    def generation(self, name: str) -> int:
        """metadata.generation, 0 for an object no store has accepted yet (none assigned).

        Raises KeyError naming the known agents, since asking about an unknown one is a bug
        in the caller, not a state to carry on from.
        """
        agent = self._agents.get(name)
        if agent is None:
            known = ", ".join(self.names()) or "none"
            raise KeyError(f"no AgentConfig {name!r} (known: {known})")
        return agent.metadata.generation or 0
