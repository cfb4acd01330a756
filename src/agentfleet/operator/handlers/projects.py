"""Project watch events.

A project that appears unblocks its batches; its repository is what Pods clone.
"""

from __future__ import annotations

from typing import Any

import kopf

from ...models import GROUP, VERSION
from ..reconciler import Reconciler

KIND = "Project"
PLURAL = "projects"


def register(registry: kopf.OperatorRegistry, reconciler: Reconciler) -> None:
    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def project_event(event: kopf.RawEvent, **_: Any) -> None:
        reconciler.observe(KIND, event.get("type"), event["object"])
