"""kopf handlers, one module per kind. They only feed the reconciler; it alone writes.

All are event handlers (`@kopf.on.event`): level-triggered, and free of kopf's per-object
bookkeeping (change handlers would patch a progress annotation onto every object, one API
call per object and change, and need finalizers this operator has no use for).
"""

from __future__ import annotations

import kopf

from ..reconciler import Reconciler
from . import agentconfigs, agenttasks, pods, projects, ticketbatches, workflows

MODULES = (ticketbatches, agenttasks, agentconfigs, workflows, projects, pods)


def register_all(registry: kopf.OperatorRegistry, reconciler: Reconciler) -> None:
    for module in MODULES:
        module.register(registry, reconciler)
