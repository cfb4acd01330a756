"""Labels, names and owner references shared by every object the operator builds."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "agentfleet"
APP_NAME_LABEL = "app.kubernetes.io/name"

RUN_LABEL = "agentfleet.dev/run"
BATCH_LABEL = "agentfleet.dev/batch"
TASK_LABEL = "agentfleet.dev/task"
STAGE_LABEL = "agentfleet.dev/stage"
ATTEMPT_LABEL = "agentfleet.dev/attempt"
AGENT_LABEL = "agentfleet.dev/agent"
AGENT_TYPE_LABEL = "agentfleet.dev/agent-type"

MAX_LABEL_VALUE = 63
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_NOT_IN_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]+")
_OWNER_KEYS = ("apiVersion", "kind", "name", "uid")


class InvalidObjectError(ValueError):
    """An object the operator was asked to build is one the API server would refuse."""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def label_value(text: str) -> str:
    """`text` as a valid label value: unchanged when it already is one.

    Names reach here validated (DNS-1123, at most 63 characters), so this is a safety net:
    anything else is cleaned and suffixed with a hash of the original, which keeps two
    different inputs from sharing a value and the same input mapping to the same value.
    """
    if len(text) <= MAX_LABEL_VALUE and _LABEL_VALUE.fullmatch(text):
        return text
    digest = _digest(text)
    cleaned = _NOT_IN_LABEL_VALUE.sub("-", text).strip("-._")
    cleaned = cleaned[: MAX_LABEL_VALUE - len(digest) - 1].rstrip("-._")
    return f"{cleaned}-{digest}" if cleaned else digest


def fit_name(base: str, suffix: str) -> str:
    """`base + suffix` as a name of at most 63 characters, shortened with a hash of `base`.

    63 keeps a derived name usable as a label value too; the hash keeps shortened names
    distinct and deterministic.
    """
    name = base + suffix
    if len(name) <= MAX_LABEL_VALUE:
        return name
    keep = MAX_LABEL_VALUE - len(suffix) - 9
    return f"{base[:keep].rstrip('-.')}-{_digest(base)}{suffix}"


def owner_references(owner: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The ownerReferences that make `owner` the controller: deleted with it, by the API's GC.

    `owner` holds apiVersion, kind, name and uid (a kopf body's fields); without a uid the
    API server refuses the reference, so a missing field is an error here, not later.
    """
    if owner is None:
        return []
    missing = [key for key in _OWNER_KEYS if not owner.get(key)]
    if missing:
        raise InvalidObjectError(f"owner reference needs {', '.join(missing)}: got {dict(owner)!r}")
    return [
        {
            **{key: str(owner[key]) for key in _OWNER_KEYS},
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
