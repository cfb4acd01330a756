"""The operator's loop: a namespace changed, so observe it, `decide()`, and apply.

One thread does every round, one namespace at a time. kopf's handlers only fill the cache
and say which namespace changed; they never write. So two Pods finishing at once cannot
write their batch's counts out of order, and a round always sees the writes of the last.

The same thread is the timer: with nothing changed, every namespace still gets a round each
`resync_seconds`, which is when stage timeouts and image-pull grace periods are noticed.
(kopf's own `@kopf.timer` would put a finalizer on every batch, and a batch could then not
be deleted while the operator is down; nothing here needs a finalizer.)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

# kopf's own matcher: the first list selects exactly the namespaces kopf's watches serve.
from kopf._cogs.structs.references import match_namespace

from ..core.reconcile import decide
from ..core.snapshot import Snapshot
from ..metrics import (
    BATCHES,
    RECONCILE_DURATION,
    RUN_DURATION,
    RUNS_FINISHED,
    TASKS,
    set_phase_counts,
)
from ..models import API_VERSION
from ..models.batch import BatchPhase
from ..models.meta import Condition, ConditionStatus
from ..models.task import TaskPhase
from .apply import Applier
from .cache import POD, WATCHED_KINDS, ClusterCache
from .client import ApiError, KubeApi
from .leader import LeaseElector
from .metadata import MANAGED_BY, MANAGED_BY_LABEL, RUN_LABEL
from .settings import OperatorSettings

log = logging.getLogger(__name__)

POD_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY},{RUN_LABEL}"
SUMMARY_CONDITION = {
    "TicketBatch": "Succeeded",
    "AgentTask": "Succeeded",
    "AgentConfig": "Ready",
    "Workflow": "Ready",
    "Project": "Ready",
}
"""The condition that sums up each kind: where an invalid object says what is wrong."""


def backoff(failures: int, cap: float) -> float:
    """0.5, 1, 2, ... seconds, at most `cap`; the exponent is bounded so it never overflows."""
    return min(cap, 0.25 * 2 ** min(failures, 16))


def now_utc() -> datetime:
    return datetime.now(UTC)


class Reconciler:
    def __init__(
        self,
        api: KubeApi,
        cache: ClusterCache,
        settings: OperatorSettings,
        clock: Callable[[], datetime] = now_utc,
        leader: LeaseElector | None = None,
    ) -> None:
        self.api, self.cache, self.settings, self.clock = api, cache, settings, clock
        self.leader = leader
        self.applier = Applier(
            api,
            cache,
            settings,
            clock,
            may_write=leader.is_leading if leader is not None else lambda: True,
        )
        self._dirty: set[str] = set()
        self._wake = threading.Condition()
        self._stopping = False
        self._started_at = clock()
        self._counted: set[tuple[str, str]] = set()
        self.rounds = 0
        self._write_failures: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        """Namespaces whose writes failed, and when to try them again with nothing new."""
        self.heartbeat = time.monotonic()
        """When the loop last came round: kopf's liveness probe fails when it is too old."""
        self.idle = threading.Event()
        """Set while no namespace waits for a round: what tests and benchmarks wait on."""

    # --- fed by kopf's handlers ------------------------------------------------------------

    def observe(self, kind: str, event_type: str | None, body: dict) -> None:
        """One watch event: hold it, and wake the loop if it changed anything."""
        if kind != POD:
            body = {**body, "apiVersion": body.get("apiVersion") or API_VERSION, "kind": kind}
        changed = (
            self.cache.remove(kind, body) if event_type == "DELETED" else self.cache.put(kind, body)
        )
        if changed:
            self.poke(body.get("metadata", {}).get("namespace") or "")

    def poke(self, namespace: str) -> None:
        with self._wake:
            self._dirty.add(namespace)
            self.idle.clear()
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()

    # --- the loop --------------------------------------------------------------------------

    def resync_from_api(self) -> None:
        """List every watched kind once: the whole truth before the first round.

        kopf delivers its initial listing as events too, but gives no sign of when it is
        complete; deciding on half a listing would re-create what exists (harmless) and
        could count slots wrong. One list per kind at start makes a restart exact.
        """
        patterns = self.settings.namespaces
        globs = any(any(c in ns for c in "*?[,!") for ns in patterns)
        # Names are listed one by one; kopf's glob patterns need the cluster-wide list.
        namespaces: list[str | None] = list(patterns) if patterns and not globs else [None]
        for kind in WATCHED_KINDS:
            for namespace in namespaces:
                selector = POD_SELECTOR if kind == POD else None
                listed = self.api.list(kind, namespace, label_selector=selector)
                api_version = listed.get("apiVersion", "v1")
                items = []
                for item in listed.get("items", []):
                    where = item.get("metadata", {}).get("namespace") or ""
                    if globs and not any(match_namespace(where, p) for p in patterns):
                        continue
                    item.setdefault("kind", kind)
                    item.setdefault("apiVersion", api_version)
                    items.append(item)
                version = listed.get("metadata", {}).get("resourceVersion")
                self.cache.replace_all(
                    kind, namespace, items, int(version) if str(version).isdigit() else None
                )
        for namespace in self.cache.namespaces():
            self.poke(namespace)

    def run(self) -> None:
        """Until `stop()`: wait for a change (or the resync interval), then reconcile.

        With leader election, only while this replica holds the Lease: a standby keeps its
        cache warm from the watches and lists everything again the moment it leads.
        """
        next_resync = time.monotonic() + self.settings.resync_seconds
        next_relist = time.monotonic() + self.settings.relist_seconds
        synced = False
        failures: dict[str, int] = {}
        while True:
            self.heartbeat = time.monotonic()
            if self.leader is not None and not self.leader.is_leading():
                synced = False
                self.idle.set()
                if not self._wait_for_lead():
                    return
            if not synced or time.monotonic() >= next_relist:
                try:
                    self.resync_from_api()
                except Exception as exc:
                    log.warning("listing the cluster failed, retrying: %s", exc)
                    if self._sleep(2.0):
                        return
                    continue
                synced = True
                next_relist = time.monotonic() + self.settings.relist_seconds
            with self._wake:
                while not self._dirty and not self._stopping:
                    self.idle.set()
                    due = [next_resync, next_relist, *self._retry_at.values()]
                    remaining = min(due) - time.monotonic()
                    if remaining <= 0:
                        break
                    self._wake.wait(remaining)
                now = time.monotonic()
                for namespace, at in list(self._retry_at.items()):
                    if at <= now:
                        del self._retry_at[namespace]
                        self._dirty.add(namespace)
                if self._stopping:
                    return
                if not self._dirty and time.monotonic() >= next_resync:
                    self._dirty = set(self.cache.namespaces())
                    next_resync = time.monotonic() + self.settings.resync_seconds
                dirty, self._dirty = sorted(self._dirty), set()
            for namespace in dirty:
                if self.leader is not None and not self.leader.is_leading():
                    self.poke(namespace)
                    continue
                try:
                    self.reconcile(namespace)
                    failures.pop(namespace, None)
                except Exception:
                    count = failures[namespace] = failures.get(namespace, 0) + 1
                    if count == 1 or count % 20 == 0:
                        log.exception(
                            "reconciling %s failed (%d times); retrying", namespace, count
                        )
                    if self._sleep(backoff(count, 10.0)):
                        return
                    self.poke(namespace)
            self.update_gauges()

    def stalled_for(self) -> float:
        """Seconds since the loop last came round (0 while it does)."""
        return time.monotonic() - self.heartbeat

    def _sleep(self, seconds: float) -> bool:
        """Wait, waking early on stop(); True when stopping."""
        with self._wake:
            if not self._stopping:
                self._wake.wait(seconds)
            return self._stopping

    def _wait_for_lead(self) -> bool:
        assert self.leader is not None
        while not (self.leader.leading.wait(0.5) and self.leader.is_leading()):
            self.heartbeat = time.monotonic()
            if self._stopping:
                return False
        return not self._stopping

    def reconcile(self, namespace: str) -> None:
        started = time.perf_counter()
        self.rounds += 1
        self.report_invalid(namespace)
        snapshot = self.cache.snapshot(namespace, self.clock())
        refused = self.applier.refused_runs(namespace)
        if refused:
            seen = {run.name for run in snapshot.runs}
            runs = [*snapshot.runs, *(r for r in refused if r.name not in seen)]
            snapshot = Snapshot(
                now=snapshot.now,
                batches=snapshot.batches,
                tasks=snapshot.tasks,
                workflows=snapshot.workflows,
                agents=snapshot.agents,
                projects=snapshot.projects,
                runs=runs,
            )
        self.count_finished(namespace, snapshot)
        before = self.cache.version
        actions = decide(snapshot)
        if self.applier.apply(namespace, snapshot, actions):
            self._write_failures.pop(namespace, None)
            self._retry_at.pop(namespace, None)
        else:
            # A write failed (a 5xx, a throttled or refused call): try again, backing off.
            count = self._write_failures[namespace] = self._write_failures.get(namespace, 0) + 1
            self._retry_at[namespace] = time.monotonic() + backoff(count, 30.0)
        self.applier.stop_failed(namespace, list(snapshot.runs))
        RECONCILE_DURATION.observe(time.perf_counter() - started)
        if self.cache.version != before:
            self.poke(namespace)  # its own writes may let more move: go again

    def report_invalid(self, namespace: str) -> None:
        """A batch or task the models refuse fails with the reason, once per generation."""
        if not self.applier.may_write():
            return
        for kind, summary in SUMMARY_CONDITION.items():
            for entry in self.cache.entries(kind, namespace):
                if entry.model is not None or entry.error is None:
                    continue
                meta = entry.body["metadata"]
                status = entry.body.get("status") or {}
                generation = meta.get("generation")
                if (
                    status.get("observedGeneration") == generation
                    and status.get("phase") == "Failed"
                ):
                    continue
                now = self.clock()
                condition = Condition(
                    type=summary,
                    status=ConditionStatus.FALSE,
                    reason="InvalidSpec",
                    message=entry.error,
                    last_transition_time=now,
                    observed_generation=generation,
                )
                value = {
                    "phase": "Failed",
                    "observedGeneration": generation,
                    "conditions": [condition.to_wire()],
                }
                patch = [{"op": "add", "path": "/status", "value": value}]
                try:
                    written = self.api.patch(
                        kind, namespace, meta["name"], patch, subresource="status", json_patch=True
                    )
                except ApiError as exc:
                    log.warning(
                        "%s %s/%s: status not written: %s", kind, namespace, meta["name"], exc
                    )
                    continue
                self.cache.put(kind, written)
                self.applier.post_event(
                    namespace, kind, meta["name"], "Warning", "InvalidSpec", entry.error
                )

    def count_finished(self, namespace: str, snapshot: Snapshot) -> None:
        for run in snapshot.runs:
            if not run.phase.finished or (namespace, run.name) in self._counted:
                continue
            self._counted.add((namespace, run.name))
            if run.finish_time is not None and run.finish_time < self._started_at:
                continue  # ended before this process started: counted by its predecessor
            agent = snapshot.agents.get(run.agent)
            agent_type = str(agent.spec.agent_type.value) if agent is not None else "unknown"
            RUNS_FINISHED.labels(agent_type=agent_type, outcome=run.phase.value).inc()
            if run.start_time is not None and run.finish_time is not None:
                RUN_DURATION.labels(agent_type=agent_type).observe(
                    max(0.0, (run.finish_time - run.start_time).total_seconds())
                )
        live = {r.name for r in snapshot.runs}
        self._counted = {k for k in self._counted if k[0] != namespace or k[1] in live}

    def update_gauges(self) -> None:
        batches: Counter[str] = Counter()
        tasks: Counter[str] = Counter()
        for entry in self.cache.entries("TicketBatch"):
            batches[(entry.body.get("status") or {}).get("phase") or "Pending"] += 1
        for entry in self.cache.entries("AgentTask"):
            tasks[(entry.body.get("status") or {}).get("phase") or "Pending"] += 1
        set_phase_counts(BATCHES, dict(batches), [p.value for p in BatchPhase])
        set_phase_counts(TASKS, dict(tasks), [p.value for p in TaskPhase])
