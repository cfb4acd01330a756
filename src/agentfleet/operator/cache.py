"""What the operator knows of the cluster: the objects its watches and its own writes delivered.

kopf's watches fill it; every object the operator writes goes in from the API's answer at
once (write-through), so the next `decide()` never works from a state older than its own
last action. A watch event that is older than what is held (a lower resourceVersion) is
dropped for the same reason. Kubernetes calls resourceVersions opaque; every API server
in use (etcd-backed) gives integers, and where one does not parse, the newest event wins.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
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
    # managedFields are often the largest part of an object, and nothing here reads them.
    raw = {**body, "metadata": {**body.get("metadata", {})}}
    raw["metadata"].pop("managedFields", None)
    if kind == POD:
        return Entry(raw, None, None)
    try:
        return Entry(raw, KINDS[kind].model_validate(raw), None)
    except ValidationError as exc:
        return Entry(raw, None, invalid_reason(exc))


def controller_of(body: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(kind, name, uid) of the object's controlling owner, if it has one."""
    for ref in body.get("metadata", {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return ref.get("kind", ""), ref.get("name", ""), ref.get("uid", "")
    return None


class ClusterCache:
    """Objects by kind and (namespace, name); safe to use from kopf's loop and the reconciler.

    Deleted objects leave a tombstone (their uid), so an event or a list taken before the
    deletion cannot bring them back; a list replaces only what is older than the list.
    """

    TOMBSTONES = 50_000

    def __init__(self, image_pull_grace_seconds: float = 120.0) -> None:
        self.image_pull_grace_seconds = image_pull_grace_seconds
        self._lock = threading.Lock()
        self._objects: dict[str, dict[tuple[str, str], Entry]] = {k: {} for k in WATCHED_KINDS}
        self._deleted: OrderedDict[str, None] = OrderedDict()
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
        key = (meta.get("namespace") or "", meta["name"])
        with self._lock:
            if self._stale(self._objects[kind].get(key), body):
                return False
        entry = parse(kind, body)
        with self._lock:
            if self._stale(self._objects[kind].get(key), body):
                return False
            self._objects[kind][key] = entry
            self.version += 1
        return True

    def _stale(self, held: Entry | None, body: Mapping[str, Any]) -> bool:
        uid = body.get("metadata", {}).get("uid")
        if uid is not None and uid in self._deleted:
            return True
        if held is None:
            return False
        old_rv, new_rv = _rv(held.body), _rv(body)
        same_object = held.body["metadata"].get("uid") == uid
        return same_object and old_rv is not None and new_rv is not None and new_rv <= old_rv

    def remove(self, kind: str, body: Mapping[str, Any]) -> bool:
        meta = body.get("metadata", {})
        key = (meta.get("namespace") or "", meta["name"])
        with self._lock:
            uid = meta.get("uid")
            if uid is not None:
                self._deleted[uid] = None
                while len(self._deleted) > self.TOMBSTONES:
                    self._deleted.popitem(last=False)
            held = self._objects[kind].get(key)
            if held is None or held.body["metadata"].get("uid") != uid:
                return False  # already gone, or a namesake created since
            del self._objects[kind][key]
            self.version += 1
            return True

    def replace_all(
        self,
        kind: str,
        namespace: str | None,
        bodies: Iterable[Mapping[str, Any]],
        list_version: int | None = None,
    ) -> None:
        """A fresh list of `kind` taken at `list_version`: held objects the list misses are
        gone, unless the watch brought them after the list was taken."""
        bodies = list(bodies)
        listed = {(b["metadata"].get("namespace") or "", b["metadata"]["name"]) for b in bodies}
        for body in bodies:
            self.put(kind, body)
        with self._lock:
            held = self._objects[kind]
            for key, entry in list(held.items()):
                if (namespace is not None and key[0] != namespace) or key in listed:
                    continue
                rv = _rv(entry.body)
                if list_version is None or rv is None or rv <= list_version:
                    del held[key]
                    self.version += 1

    def get(self, kind: str, namespace: str, name: str) -> Entry | None:
        with self._lock:
            return self._objects[kind].get((namespace, name))

    def entries(self, kind: str, namespace: str | None = None) -> list[Entry]:
        with self._lock:
            return [
                entry
                for (ns, _), entry in self._objects[kind].items()
                if namespace is None or ns == namespace
            ]

    def namespaces(self) -> set[str]:
        with self._lock:
            return {ns for kind in KINDS for (ns, _) in self._objects[kind]}

    def _owned_by_current(self, body: Mapping[str, Any], namespace: str) -> bool:
        """False for a child of a deleted owner (or of its deleted namesake): garbage soon,
        never to be mistaken for a child of the object that now bears the owner's name."""
        owner = controller_of(body)
        if owner is None or owner[0] not in self._objects:
            return True
        held = self._objects[owner[0]].get((namespace, owner[1]))
        return held is not None and held.body["metadata"].get("uid") == owner[2]

    def observed_runs(self, namespace: str, now: datetime) -> list[ObservedRun]:
        """The namespace's Pods as runs; a finished Pod is read once per resourceVersion."""
        runs = []
        with self._lock:
            pods = [
                e.body
                for (ns, _), e in self._objects[POD].items()
                if ns == namespace and self._owned_by_current(e.body, namespace)
            ]
        for body in pods:
            key = (namespace, body["metadata"]["name"], _rv(body))
            run = self._finished_runs.get(key)
            if run is None:
                run = observe_pod(
                    body, now=now, image_pull_grace_seconds=self.image_pull_grace_seconds
                )
                if run is None:
                    continue
                if run.phase in (RunPhase.SUCCEEDED, RunPhase.FAILED) and key[2] is not None:
                    self._finished_runs[key] = run
            runs.append(run)
        return runs

    def models(self, kind: str, namespace: str) -> dict[str, Any]:
        with self._lock:
            return {
                name: e.model
                for (ns, name), e in self._objects[kind].items()
                if ns == namespace and e.model is not None
            }

    def snapshot(self, namespace: str, now: datetime) -> Snapshot:
        """What `decide()` needs of one namespace; references never cross namespaces."""
        with self._lock:
            tasks = [
                e.model
                for (ns, _), e in self._objects["AgentTask"].items()
                if ns == namespace
                and e.model is not None
                and self._owned_by_current(e.body, namespace)
            ]
            live = {name for (ns, name) in self._objects[POD] if ns == namespace}
        self._finished_runs = {
            key: run
            for key, run in self._finished_runs.items()
            if key[0] != namespace or key[1] in live
        }
        return Snapshot(
            now=now,
            batches=list(self.models("TicketBatch", namespace).values()),
            tasks=tasks,
            workflows=self.models("Workflow", namespace),
            agents=self.models("AgentConfig", namespace),
            projects=self.models("Project", namespace),
            runs=self.observed_runs(namespace, now),
        )
