"""Run Pods' watch events: a Pod that starts, ends or fails moves its task and batch on.

Only Pods the operator made (its managed-by label and a run label) are watched. These are
event handlers, not change handlers: kopf then keeps no state of its own on the Pods (a
change handler would patch an annotation on every Pod, and copy its large run spec into it).
"""

from __future__ import annotations

from typing import Any

import kopf

from ..metadata import MANAGED_BY, MANAGED_BY_LABEL, RUN_LABEL
from ..reconciler import Reconciler

KIND = "Pod"


def register(registry: kopf.OperatorRegistry, reconciler: Reconciler) -> None:
    @kopf.on.event(
        "",
        "v1",
        "pods",
        labels={MANAGED_BY_LABEL: MANAGED_BY, RUN_LABEL: kopf.PRESENT},
        registry=registry,
    )
    async def pod_event(event: kopf.RawEvent, **_: Any) -> None:
        reconciler.observe(KIND, event.get("type"), event["object"])
