"""Applying `decide()`'s actions to the cluster: objects, Pods, status patches and Events.

Every action is safe to apply twice: names are deterministic, a create that finds the
object already there is success, a status is written whole, and a one-shot annotation is
removed only if it still holds the value `decide()` saw.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import kopf

from ..core.actions import (
    Action,
    CancelRun,
    ClearAnnotation,
    CreateTask,
    RecordEvent,
    RunRequest,
    SetStatus,
    StartRun,
)
from ..core.planning import task_workflow
from ..core.snapshot import Snapshot
from ..metrics import RUNS_STARTED
from ..models.meta import Resource
from ..models.run import ObservedRun, RunKind, RunPhase
from ..runner.spec import build_run_spec
from .cache import POD, ClusterCache, controller_of
from .client import ApiError, KubeApi
from .metadata import InvalidObjectError, fit_name
from .network import build_network_policy
from .pods import build_pod
from .runs import STOP_REASON_ANNOTATION, stop_patch
from .settings import OperatorSettings
from .workspace import build_workspace_claim, context_path, run_dir

log = logging.getLogger(__name__)

JSON = dict[str, Any]
COMPONENT = "agentfleet-operator"
MAX_EVENT_MESSAGE = 1024
TRANSIENT_CODES = frozenset({408, 409, 429, 500, 502, 503, 504})
"""Answers worth asking again next round; any other refusal of a run's Pod is final."""


def json_pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


POD_START_ALLOWANCE_SECONDS = 300
"""Added to a Pod's deadline: it counts from the Pod's start, image pulls and the clone
included, while a stage's timeout counts from the runner's start."""


def deadline_margin(timeout: int | None) -> int:
    """Seconds between the clocks of a stage timeout, so they fire in a useful order.

    The runner stops its agent `margin` early and still writes what it has (usage, a partial
    commit); at the timeout (from the runner's start) the core fails the attempt and stops
    the Pod; the kubelet's activeDeadlineSeconds, from the Pod's start, is the backstop.
    """
    if not timeout:
        return 0
    return min(30, max(1, timeout // 10)) if timeout > 1 else 0


def combined(messages: list[str]) -> str:
    """One Event for what one round said many times of one object (a batch's TaskCreated).

    Like client-go's event aggregation: `kubectl describe` stays readable, and a 500-task
    batch costs one Event call, not 500.
    """
    if len(messages) == 1:
        return messages[0]
    text = f"({len(messages)} events) " + "; ".join(messages)
    return text if len(text) <= MAX_EVENT_MESSAGE else text[: MAX_EVENT_MESSAGE - 1] + "…"


def _target(action: Action) -> tuple[str, str]:
    match action:
        case CreateTask(task=task):
            return ("AgentTask", task.name)
        case StartRun(run=run):
            return ("Pod", run.name)
        case CancelRun(name=name):
            return ("Pod", name)
        case SetStatus(kind=kind, name=name) | ClearAnnotation(kind=kind, name=name):
            return (kind, name)
        case RecordEvent(kind=kind, name=name):
            return (kind, name)
    return ("", "")


def owner_fields(body: JSON) -> JSON:
    """What an ownerReference names of its owner."""
    meta = body.get("metadata", {})
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
    }


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass
class Applier:
    """Applies one namespace's actions; remembers only what the cluster cannot tell it."""

    api: KubeApi
    cache: ClusterCache
    settings: OperatorSettings
    clock: Callable[[], datetime] = now_utc
    may_write: Callable[[], bool] = lambda: True
    """False once this replica no longer holds the leader Lease: then nothing is written."""
    failed_starts: dict[tuple[str, str, str | None], ObservedRun] = field(default_factory=dict)
    """Runs whose Pod the API refused for good, by namespace, name and owner uid: no Pod
    records them, so this does, for as long as their task (or batch) exists."""
    claims: set[tuple[str, str, str | None]] = field(default_factory=set)
    """Workspace claims made, by namespace, name and owning batch uid."""
    instance: str = field(
        default_factory=lambda: os.environ.get("HOSTNAME") or socket.gethostname()
    )

    def apply(self, namespace: str, snapshot: Snapshot, actions: list[Action]) -> bool:
        """Apply in an order that keeps a failure safe; False when something must be retried.

        A one-shot annotation is cleared only once its object's status, which records that
        the request was acted on, is written: the other way round, a failed status write
        would lose the request. A batch's status waits for its tasks' statuses, so a batch
        never reads finished while a task's last write is missing (finished batches are not
        looked at again).
        """
        seen: dict[tuple[str, str], Any] = {("AgentTask", t.name): t for t in snapshot.tasks}
        seen.update({("TicketBatch", b.name): b for b in snapshot.batches})
        events: dict[tuple[str, str, str, str], list[str]] = {}
        clears: list[ClearAnnotation] = []
        batch_statuses: list[SetStatus] = []
        failed: set[tuple[str, str]] = set()
        for action in actions:
            if isinstance(action, RecordEvent):
                key = (action.kind, action.name, action.type, action.reason)
                events.setdefault(key, []).append(action.message)
            elif isinstance(action, ClearAnnotation):
                clears.append(action)
            elif isinstance(action, SetStatus) and action.kind == "TicketBatch":
                batch_statuses.append(action)
            elif not self._try(namespace, action, seen):
                failed.add(_target(action))
        held_back = {
            self._batch_of(name, seen, actions) for kind, name in failed if kind == "AgentTask"
        }
        for action in batch_statuses:
            if action.name in held_back or not self._try(namespace, action, seen):
                failed.add(_target(action))
        for action in clears:
            if (action.kind, action.name) not in failed:
                self._try(namespace, action, seen)
        for (kind, name, type_, reason), messages in events.items():
            # An object whose write failed is decided again next round, Events included.
            if (kind, name) not in failed:
                self.post_event(namespace, kind, name, type_, reason, combined(messages))
        return not failed

    @staticmethod
    def _batch_of(task: str, seen: dict[tuple[str, str], Any], actions: list[Action]) -> str:
        model = seen.get(("AgentTask", task))
        if model is None:  # created this round
            model = next(
                (a.task for a in actions if isinstance(a, CreateTask) and a.task.name == task),
                None,
            )
        ref = model.spec.batch_ref if model is not None else None
        return ref.name if ref is not None else ""

    def _try(self, namespace: str, action: Action, seen: dict[tuple[str, str], Any]) -> bool:
        if not self.may_write():
            return False
        try:
            self._apply(namespace, action, seen)
        except ApiError as exc:
            if exc.code == 404:
                return True  # its object was deleted meanwhile; the next round knows
            log.warning("%s in %s: %s", type(action).__name__, namespace, exc)
            return False
        except Exception:
            # One action's bug must not keep the others (a status, a cancel) from landing.
            log.exception("%s in %s failed", type(action).__name__, namespace)
            return False
        return True

    def _apply(self, namespace: str, action: Action, seen: dict[tuple[str, str], Any]) -> None:
        match action:
            case CreateTask(task=task):
                self._create_task(namespace, task)
            case StartRun(run=request):
                self._start(namespace, request)
            case CancelRun(name=name, reason=reason, message=message):
                self._cancel(namespace, name, reason, message)
            case SetStatus(kind=kind, name=name, status=status):
                body = [{"op": "add", "path": "/status", "value": status.to_wire()}]
                written = self.api.patch(
                    kind, namespace, name, body, subresource="status", json_patch=True
                )
                self.cache.put(kind, written)
            case ClearAnnotation(kind=kind, name=name, key=key):
                self._clear_annotation(namespace, kind, name, key, seen)

    # --- objects ---------------------------------------------------------------------------

    def _owner(self, kind: str, namespace: str, name: str | None) -> JSON | None:
        entry = self.cache.get(kind, namespace, name) if name else None
        return entry.body if entry is not None else None

    def _create_task(self, namespace: str, task: Resource[Any, Any]) -> None:
        body = task.to_wire()
        body.pop("status", None)
        body["metadata"]["namespace"] = namespace
        ref = task.spec.batch_ref
        owner = self._owner("TicketBatch", namespace, ref.name if ref else None)
        if ref is not None and owner is None:
            return  # the batch is gone: a task now would be nobody's, never collected
        if owner is not None:
            kopf.adopt(body, owner=owner)  # type: ignore[arg-type]
        created = self.api.create(body)
        if created is not None:
            self.cache.put("AgentTask", created)

    def _clear_annotation(
        self, namespace: str, kind: str, name: str, key: str, seen: dict[tuple[str, str], Any]
    ) -> None:
        model = seen.get((kind, name))
        if model is None:
            entry = self.cache.get(kind, namespace, name)
            model = entry.model if entry is not None else None
        value = model.metadata.annotations.get(key) if model is not None else None
        if value is None:
            return
        path = json_pointer("metadata", "annotations", key)
        patch = [{"op": "test", "path": path, "value": value}, {"op": "remove", "path": path}]
        try:
            written = self.api.patch(kind, namespace, name, patch, json_patch=True)
        except ApiError as exc:
            if exc.code == 422:
                return  # a person changed it since: their new request stays for next round
            raise
        self.cache.put(kind, written)

    # --- runs ------------------------------------------------------------------------------

    def _owner_uid(self, namespace: str, run: RunRequest | ObservedRun) -> str | None:
        """The uid of the object a run belongs to: its task, or for a refinement its batch."""
        kind, name = ("AgentTask", run.task) if run.task else ("TicketBatch", run.batch)
        entry = self.cache.get(kind, namespace, name) if name else None
        return entry.body["metadata"].get("uid") if entry is not None else None

    def _start(self, namespace: str, request: RunRequest) -> None:
        if (namespace, request.name, self._owner_uid(namespace, request)) in self.failed_starts:
            return
        if self.cache.get(POD, namespace, request.name) is not None:
            return
        try:
            objects = self._run_objects(namespace, request)
        except (InvalidObjectError, ValueError) as exc:
            self._refused(namespace, request, "InvalidRun", str(exc))
            return
        if objects is None:
            return
        claim, policy, pod = objects
        try:
            batch_uid = self._owner_uid(namespace, replace(request, task=None))
            if claim is not None and not self._ensure_claim(namespace, claim, batch_uid):
                return
            if policy is not None:
                self.api.create(policy)
            created = self.api.create(pod)
        except ApiError as exc:
            if exc.code in TRANSIENT_CODES or (exc.code == 403 and "exceeded quota" in exc.message):
                raise  # asked again next round: a full quota frees up as runs end
            self._refused(namespace, request, "PodRejected", exc.message or str(exc))
            return
        if created is not None:
            self.cache.put(POD, created)
            agent = self.cache.get("AgentConfig", namespace, request.agent)
            agent_type = agent.model.spec.agent_type.value if agent and agent.model else "unknown"
            RUNS_STARTED.labels(agent_type=agent_type).inc()

    def _ensure_claim(self, namespace: str, claim: JSON, batch_uid: str | None) -> bool:
        """Make the batch's workspace claim; False while a claim of a deleted namesake of
        the batch is still on its way out (a Pod now would mount it, then lose it).

        A claim of this batch, or of no batch (retained), is used as it is."""
        name = claim["metadata"]["name"]
        if self.api.create(claim) is None:
            existing = self.api.get("PersistentVolumeClaim", namespace, name)
            if existing is None:
                return False  # deleted between the two calls: made next round
            theirs = controller_of(existing)
            if existing["metadata"].get("deletionTimestamp") or (
                theirs is not None and theirs[2] != batch_uid
            ):
                log.warning("claim %s/%s belongs to a deleted batch; waiting", namespace, name)
                return False
        self.claims.add((namespace, name, batch_uid))
        return True

    def _run_objects(
        self, namespace: str, request: RunRequest
    ) -> tuple[JSON | None, JSON | None, JSON] | None:
        """The claim (first run of a batch), NetworkPolicy and Pod; None while a ref is missing."""
        get = self.cache.get
        agent = get("AgentConfig", namespace, request.agent)
        batch = get("TicketBatch", namespace, request.batch) if request.batch else None
        task = get("AgentTask", namespace, request.task) if request.task else None
        project = get("Project", namespace, request.project) if request.project else None
        if agent is None or agent.model is None or batch is None or batch.model is None:
            return None
        if project is None or project.model is None:
            return None
        if request.kind == RunKind.STAGE and (task is None or task.model is None):
            return None
        task_model = task.model if task is not None else None
        workflows = {
            e.model.name: e.model for e in self.cache.entries("Workflow", namespace) if e.model
        }
        workflow = (
            task_workflow(task_model, batch.model, project.model, workflows)
            if task_model is not None
            else None
        )
        margin = deadline_margin(request.timeout_seconds)
        pod_deadline = (
            request.timeout_seconds + margin + POD_START_ALLOWANCE_SECONDS
            if request.timeout_seconds
            else None
        )
        spec = build_run_spec(
            request,
            agent=agent.model,
            task=task_model,
            batch=batch.model,
            workflow=workflow,
            worktree=run_dir(request.name),
            context_dir=context_path(request.name),
            timeout_slack_seconds=-margin,
            sandboxed=True,
        )
        owner = owner_fields((task or batch).body)
        pod = build_pod(
            replace(request, timeout_seconds=pod_deadline),
            spec,
            agent.model,
            project.model,
            batch.model,
            namespace=namespace,
            settings=self.settings.pod,
            owner=owner,
            co_locate=self.settings.workspace_of(batch.model).access_mode == "ReadWriteOnce",
        )
        policy = build_network_policy(request, agent.model, namespace=namespace, owner=owner)
        claim = None
        wanted = self.settings.workspace_of(batch.model)
        claim_body = build_workspace_claim(
            batch.model.name,
            namespace=namespace,
            storage_class=wanted.storage_class,
            size=wanted.size,
            access_mode=wanted.access_mode,
            owner=None if wanted.retain else owner_fields(batch.body),
        )
        batch_uid = batch.body["metadata"].get("uid")
        if (namespace, claim_body["metadata"]["name"], batch_uid) not in self.claims:
            claim = claim_body
        return claim, policy, pod

    def _refused(self, namespace: str, request: RunRequest, reason: str, message: str) -> None:
        now = self.clock()
        log.warning("run %s/%s cannot start: %s", namespace, request.name, message)
        key = (namespace, request.name, self._owner_uid(namespace, request))
        self.failed_starts[key] = ObservedRun(
            name=request.name,
            kind=request.kind,
            batch=request.batch,
            task=request.task,
            stage=request.stage,
            attempt=request.attempt,
            agent=request.agent,
            phase=RunPhase.FAILED,
            reason=reason,
            message=message,
            start_time=now,
            finish_time=now,
        )

    def refused_runs(self, namespace: str) -> list[ObservedRun]:
        """Refused runs of objects that still exist; those of deleted ones are forgotten."""
        runs = []
        for key, run in list(self.failed_starts.items()):
            if key[0] != namespace:
                continue
            current = self._owner_uid(namespace, run)
            if current is None or current != key[2]:
                del self.failed_starts[key]
            else:
                runs.append(run)
        return runs

    def stop_failed(self, namespace: str, runs: list[ObservedRun]) -> None:
        """End Pods already judged failed that still hold a node: one stuck pulling its image.

        The judgement is the observation's (a grace period ran out); ending the Pod is only
        applying it, so it stays recorded with the same reason.
        """
        for run in runs:
            if not self.may_write():
                return
            if run.phase == RunPhase.FAILED and run.reason:
                try:
                    self._cancel(namespace, run.name, run.reason, run.message)
                except ApiError as exc:
                    log.warning("stopping Pod %s/%s: %s", namespace, run.name, exc)

    def _cancel(self, namespace: str, name: str, reason: str, message: str) -> None:
        entry = self.cache.get(POD, namespace, name)
        if entry is None:
            return
        phase = (entry.body.get("status") or {}).get("phase")
        annotations = entry.body["metadata"].get("annotations") or {}
        if phase in ("Succeeded", "Failed") or STOP_REASON_ANNOTATION in annotations:
            return
        written = self.api.patch(POD, namespace, name, stop_patch(reason, message))
        self.cache.put(POD, written)

    # --- events ----------------------------------------------------------------------------

    def post_event(
        self, namespace: str, kind: str, name: str, type_: str, reason: str, message: str
    ) -> None:
        """A core/v1 Event, as `kubectl describe` and `kubectl get events` show them."""
        if not self.may_write():
            return
        entry = self.cache.get(kind, namespace, name)
        involved: JSON = {"kind": kind, "namespace": namespace, "name": name}
        if entry is not None:
            involved["apiVersion"] = entry.body.get("apiVersion")
            involved["uid"] = entry.body["metadata"].get("uid")
            involved["resourceVersion"] = entry.body["metadata"].get("resourceVersion")
        now = self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": fit_name(name, f".{uuid.uuid4().hex[:16]}"),
                "namespace": namespace,
            },
            "involvedObject": {k: v for k, v in involved.items() if v},
            "type": type_,
            "reason": reason,
            "message": message[:MAX_EVENT_MESSAGE],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.instance[:128],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.api.create(event)
        except ApiError as exc:
            log.info("event %s on %s/%s not posted: %s", reason, kind, name, exc)
