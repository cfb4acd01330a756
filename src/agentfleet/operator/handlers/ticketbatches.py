"""TicketBatch watch events.

Raw tickets and their run: a change may create tasks, start runs or end the batch.
"""

from __future__ import annotations

from typing import Any

import kopf

from ...models import GROUP, VERSION
from ..reconciler import Reconciler

KIND = "TicketBatch"
PLURAL = "ticketbatches"


def register(registry: kopf.OperatorRegistry, reconciler: Reconciler) -> None:
    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def batch_event(event: kopf.RawEvent, **_: Any) -> None:
        reconciler.observe(KIND, event.get("type"), event["object"])
