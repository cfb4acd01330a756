"""AgentTask watch events.

A task's change (a status write, an approval or action annotation) moves its stages on.
"""

from __future__ import annotations

from typing import Any

import kopf

from ...models import GROUP, VERSION
from ..reconciler import Reconciler

KIND = "AgentTask"
PLURAL = "agenttasks"


def register(registry: kopf.OperatorRegistry, reconciler: Reconciler) -> None:
    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def task_event(event: kopf.RawEvent, **_: Any) -> None:
        reconciler.observe(KIND, event.get("type"), event["object"])
