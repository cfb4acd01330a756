"""Kubernetes-style conditions: one per type, transition time kept while status holds."""

from __future__ import annotations

from datetime import datetime

from ..models.meta import Condition, ConditionStatus


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """The conditions with `type_` replaced; lastTransitionTime moves only when status does."""
    previous = next((c for c in conditions if c.type == type_), None)
    if previous is not None and previous.status == status:
        transition = previous.last_transition_time or now
    else:
        transition = now
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=generation,
    )
    return (
        [updated if c.type == type_ else c for c in conditions]
        if previous
        else [
            *conditions,
            updated,
        ]
    )
