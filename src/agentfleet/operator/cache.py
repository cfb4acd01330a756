"""What the operator knows of the cluster: the objects its watches and its own writes delivered.

kopf's watches fill it; every object the operator writes goes in from the API's answer at
once (write-through), so the next `decide()` never works from a state older than its own
last action. A watch event that is older than what is held (a lower resourceVersion) is
dropped for the same reason. Kubernetes calls resourceVersions opaque; every API server
in use (etcd-backed) gives integers, and where one does not parse, the newest event wins.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ..core.snapshot import Snapshot
from ..models import KINDS
from ..models.loader import _describe, _field_path
from ..models.meta import Resource
from ..models.run import ObservedRun, RunPhase
from .runs import observe_pod

JSON = dict[str, Any]
POD = "Pod"
WATCHED_KINDS = (*KINDS, POD)


@dataclass(frozen=True)
class Entry:
    """One object as held: the raw body, and its model (None when the body is invalid)."""

    body: JSON
    model: Resource[Any, Any] | None
    error: str | None


def _rv(body: Mapping[str, Any]) -> int | None:
    value = body.get("metadata", {}).get("resourceVersion")
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def invalid_reason(error: ValidationError) -> str:
    """Every field pydantic refused, as `field: reason`, the way `agentfleet apply` says it."""
    return "; ".join(
        f"{_field_path(err['loc']) or '(object)'}: {_describe(err)}" for err in error.errors()
    )


def parse(kind: str, body: Mapping[str, Any]) -> Entry:
    raw = dict(body)
    if kind == POD:
        return Entry(raw, None, None)
    data = {**raw, "metadata": {**raw.get("metadata", {})}}
    data["metadata"].pop("managedFields", None)
    try:
        return Entry(raw, KINDS[kind].model_validate(data), None)
    except ValidationError as exc:
        return Entry(raw, None, invalid_reason(exc))


class ClusterCache:
    """Objects by (kind, namespace, name); safe to use from kopf's loop and the reconciler."""

    def __init__(self, image_pull_grace_seconds: float = 120.0) -> None:
        self.image_pull_grace_seconds = image_pull_grace_seconds
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str, str], Entry] = {}
        self._finished_runs: dict[tuple[str, str, int | None], ObservedRun] = {}
        self.version = 0
        """Bumped by every change: a round that changed the cache is followed by another."""

    def put(self, kind: str, body: Mapping[str, Any]) -> bool:
        """Hold `body` unless what is held is newer; True when something changed.

        kopf's loop and the reconciler both put: the check is made again under the lock
        after parsing (which is slow, so done outside it), or an older watch event parsed
        alongside a newer write could land last.
        """
        meta = body.get("metadata", {})
        key = (kind, meta.get("namespace") or "", meta["name"])
        with self._lock:
            if self._stale(self._objects.get(key), body):
                return False
        entry = parse(kind, body)
        with self._lock:
            if self._stale(self._objects.get(key), body):
                return False
            self._objects[key] = entry
            self.version += 1
        return True

    @staticmethod
    def _stale(held: Entry | None, body: Mapping[str, Any]) -> bool:
        if held is None:
            return False
        old_rv, new_rv = _rv(held.body), _rv(body)
        same_object = held.body["metadata"].get("uid") == body.get("metadata", {}).get("uid")
        return same_object and old_rv is not None and new_rv is not None and new_rv <= old_rv

    def remove(self, kind: str, body: Mapping[str, Any]) -> bool:
        meta = body.get("metadata", {})
        key = (kind, meta.get("namespace") or "", meta["name"])
        with self._lock:
            held = self._objects.get(key)
            if held is None or held.body["metadata"].get("uid") != meta.get("uid"):
                return False  # already gone, or a namesake created since
            del self._objects[key]
            self.version += 1
            return True

    def replace_all(
        self, kind: str, namespace: str | None, bodies: Iterable[Mapping[str, Any]]
    ) -> None:
        """A fresh list of `kind`: what it holds is the truth, newer held objects aside."""
        listed = {(b["metadata"].get("namespace") or "", b["metadata"]["name"]) for b in bodies}
        for body in bodies:
            self.put(kind, body)
        with self._lock:
            for key in list(self._objects):
                k, ns, name = key
                gone = k == kind and (namespace is None or ns == namespace)
                if gone and (ns, name) not in listed:
                    del self._objects[key]
                    self.version += 1

    def get(self, kind: str, namespace: str, name: str) -> Entry | None:
        with self._lock:
            return self._objects.get((kind, namespace, name))

    def entries(self, kind: str, namespace: str | None = None) -> list[Entry]:
        with self._lock:
            return [
                entry
                for (k, ns, _), entry in self._objects.items()
                if k == kind and (namespace is None or ns == namespace)
            ]

    def namespaces(self) -> set[str]:
        with self._lock:
            return {ns for (kind, ns, _) in self._objects if kind in KINDS}

    def observed_runs(self, namespace: str, now: datetime) -> list[ObservedRun]:
        """The namespace's Pods as runs; a finished Pod is read once per resourceVersion."""
        runs = []
        for entry in self.entries(POD, namespace):
            meta = entry.body["metadata"]
            key = (namespace, meta["name"], _rv(entry.body))
            run = self._finished_runs.get(key)
            if run is None:
                run = observe_pod(
                    entry.body, now=now, image_pull_grace_seconds=self.image_pull_grace_seconds
                )
                if run is None:
                    continue
                if run.phase in (RunPhase.SUCCEEDED, RunPhase.FAILED) and key[2] is not None:
                    self._finished_runs[key] = run
            runs.append(run)
        return runs

    def snapshot(self, namespace: str, now: datetime) -> Snapshot:
        """What `decide()` needs of one namespace; references never cross namespaces."""
        models: dict[str, list[Any]] = {kind: [] for kind in KINDS}
        with self._lock:
            for (kind, ns, _), entry in self._objects.items():
                if ns == namespace and kind in models and entry.model is not None:
                    models[kind].append(entry.model)
        live = {(e.body["metadata"]["name"]) for e in self.entries(POD, namespace)}
        self._finished_runs = {
            key: run
            for key, run in self._finished_runs.items()
            if key[0] != namespace or key[1] in live
        }
        return Snapshot(
            now=now,
            batches=models["TicketBatch"],
            tasks=models["AgentTask"],
            workflows={m.name: m for m in models["Workflow"]},
            agents={m.name: m for m in models["AgentConfig"]},
            projects={m.name: m for m in models["Project"]},
            runs=self.observed_runs(namespace, now),
        )
