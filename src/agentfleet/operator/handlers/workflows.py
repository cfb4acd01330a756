"""Workflow watch events. A workflow that appears unblocks the batches that name it."""

from __future__ import annotations

from typing import Any

import kopf

from ...models import GROUP, VERSION
from ..reconciler import Reconciler

KIND = "Workflow"
PLURAL = "workflows"


def register(registry: kopf.OperatorRegistry, reconciler: Reconciler) -> None:
    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def workflow_event(event: kopf.RawEvent, **_: Any) -> None:
        reconciler.observe(KIND, event.get("type"), event["object"])
