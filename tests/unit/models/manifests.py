"""Minimal valid manifests, in wire form (camelCase dicts), for the model and loader tests.

Each builder returns a fresh dict, so a test can break one field without touching others.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

API = "agentfleet.dev/v1alpha1"


def project(name: str = "demo", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Project",
        "metadata": {"name": name},
        "spec": {"repository": {"url": "https://example.com/demo.git"}, **spec},
    }


def agent(name: str = "dev", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "AgentConfig",
        "metadata": {"name": name},
        "spec": {
            "agentType": "Development",
            "baseExecutor": {"type": "claude-code"},
            **spec,
        },
    }


def stage(name: str, *deps: str, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": name, "agentType": "Development", **fields}
    if deps:
        doc["dependencies"] = list(deps)
    return doc


def workflow(
    name: str = "flow", stages: list[dict[str, Any]] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {"stages": stages if stages is not None else [stage("implement")], **spec},
    }


def ticket(id_: str, *deps: str, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": id_, "rawDescription": f"do {id_}", **fields}
    if deps:
        doc["dependencies"] = list(deps)
    return doc


def batch(
    name: str = "b1", tickets: list[dict[str, Any]] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "TicketBatch",
        "metadata": {"name": name},
        "spec": {
            "projectRef": {"name": "demo"},
            "tickets": tickets if tickets is not None else [ticket("T-1")],
            **spec,
        },
    }


def task(
    name: str = "b1-t-1", annotations: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "AgentTask",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"title": "Do the thing", **spec},
    }


def error_messages(exc: ValidationError) -> str:
    """Every message of a ValidationError, joined, for substring assertions."""
    return "\n".join(str(e["msg"]) for e in exc.errors())


def error_locs(exc: ValidationError) -> list[tuple[int | str, ...]]:
    return [tuple(e["loc"]) for e in exc.errors()]
