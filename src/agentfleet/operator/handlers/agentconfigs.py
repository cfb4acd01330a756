"""AgentConfig watch events.

An agent that appears or changes may unblock runs waiting for it, or change later runs' limits.
"""

from __future__ import annotations

from typing import Any

import kopf

from ...models import GROUP, VERSION
from ..reconciler import Reconciler

KIND = "AgentConfig"
PLURAL = "agentconfigs"


def register(registry: kopf.OperatorRegistry, reconciler: Reconciler) -> None:
    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def agent_event(event: kopf.RawEvent, **_: Any) -> None:
        reconciler.observe(KIND, event.get("type"), event["object"])
