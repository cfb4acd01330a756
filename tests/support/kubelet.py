"""Tests play the kubelet: Pod statuses as a node writes them, and a way to write them.

No node runs here (see README.md), so nothing ever moves a Pod past Pending. The builders
return the `status` a kubelet (1.30, containerd) writes for each way a run's Pod can end:
field names, reasons and messages as the kubelet sets them, termination messages cut as it
cuts them. They are pure: times come from the Pod's creationTimestamp (or a fixed date), not
from a clock, so the same call gives the same status.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import kubernetes.client

from agentfleet.models.run import RunResult

Obj = dict[str, Any]

CREATED: Final = datetime(2026, 1, 1, tzinfo=UTC)
"""Where times start for a Pod without a creationTimestamp (one built, never created)."""
STARTED_AFTER: Final = timedelta(seconds=2)
RAN_FOR: Final = timedelta(seconds=60)
HOST_IP: Final = "10.0.0.5"
POD_IP: Final = "10.244.1.23"

MAX_TERMINATION_MESSAGE_BYTES: Final = 4096
"""The kubelet reads at most this much of terminationMessagePath."""
FALLBACK_LOG_LINES: Final = 80
FALLBACK_LOG_BYTES: Final = 2048
"""FallbackToLogsOnError: the last 80 lines of the log, at most 2 KiB."""

DEADLINE_MESSAGE: Final = "Pod was active on the node longer than the specified deadline"
EVICTION_MESSAGE: Final = (
    "The node was low on resource: memory. Threshold quantity: 100Mi, available: 51200Ki. "
    "Container runner was using 2201524Ki, request is 2Gi, has larger consumption of memory. "
)
UNSCHEDULABLE_MESSAGE: Final = (
    "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available: "
    "3 No preemption victims found for incoming pod."
)
SIGKILL_EXIT: Final = 137


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _created(pod: Mapping[str, Any]) -> datetime:
    value = (pod.get("metadata") or {}).get("creationTimestamp")
    return datetime.fromisoformat(value) if value else CREATED


def _hex(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def _specs(pod: Mapping[str, Any], key: str) -> list[Obj]:
    return list((pod.get("spec") or {}).get(key) or [])


def _name(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name", ""))


def termination_message(text: str, policy: str = "File") -> str:
    """What the kubelet keeps of a termination message (File) or of the log (the fallback)."""
    if policy == "FallbackToLogsOnError":
        lines = text.splitlines(keepends=True)[-FALLBACK_LOG_LINES:]
        return "".join(lines).encode()[-FALLBACK_LOG_BYTES:].decode(errors="ignore")
    return text.encode()[:MAX_TERMINATION_MESSAGE_BYTES].decode(errors="ignore")


def _container(
    pod: Mapping[str, Any], spec: Mapping[str, Any], state: Obj, *, ready: bool = False
) -> Obj:
    """One containerStatuses entry; ids only for a container the runtime created."""
    name, image = spec["name"], spec.get("image", "")
    created = "waiting" not in state
    status: Obj = {
        "name": name,
        "state": state,
        "lastState": {},
        "ready": ready,
        "restartCount": 0,
        "image": image,
        "imageID": f"{image.rsplit(':', 1)[0]}@sha256:{_hex(image)}" if created else "",
        "started": "running" in state,
    }
    if created:
        status["containerID"] = f"containerd://{_hex(_name(pod), name)}"
    return status


def _terminated(
    pod: Mapping[str, Any],
    spec: Mapping[str, Any],
    exit_code: int,
    reason: str,
    message: str | None,
    start: datetime,
    end: datetime,
) -> Obj:
    terminated: Obj = {"exitCode": exit_code, "reason": reason}
    if message:
        policy = spec.get("terminationMessagePolicy", "File")
        terminated["message"] = termination_message(message, policy)
    terminated |= {
        "startedAt": _time(start),
        "finishedAt": _time(end),
        "containerID": f"containerd://{_hex(_name(pod), spec['name'])}",
    }
    return {"terminated": terminated}


def _condition(kind: str, ok: bool, at: datetime, reason: str = "", message: str = "") -> Obj:
    condition: Obj = {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None}
    condition["lastTransitionTime"] = _time(at)
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def qos_class(pod: Mapping[str, Any]) -> str:
    """Guaranteed when every container's requests equal its cpu and memory limits."""
    containers = _specs(pod, "initContainers") + _specs(pod, "containers")
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("limits") or r.get("requests") for r in resources):
        return "BestEffort"
    for r in resources:
        limits, requests = r.get("limits") or {}, r.get("requests") or {}
        for key in ("cpu", "memory"):
            if key not in limits or requests.get(key, limits[key]) != limits[key]:
                return "Burstable"
    return "Guaranteed"


def _pod_status(
    pod: Mapping[str, Any],
    phase: str,
    init: list[Obj],
    main: list[Obj],
    *,
    initialized: bool,
    ready: bool,
    start: datetime,
    **extra: Any,
) -> Obj:
    """The whole status of a Pod bound to a node: conditions, addresses, containers."""
    if phase == "Succeeded":
        ready_reason, init_reason = "PodCompleted", "PodCompleted"
    else:
        init_reason = ""
        ready_reason = "" if ready else "ContainersNotReady"
    unready = [c["name"] for c in main if not c["ready"]]
    ready_message = f"containers with unready status: [{' '.join(unready)}]" if unready else ""
    waiting_init = [
        c["name"] for c in init if (c["state"].get("terminated") or {}).get("exitCode") != 0
    ]
    init_message = (
        f"containers with incomplete status: [{' '.join(waiting_init)}]" if waiting_init else ""
    )
    if not initialized:
        init_reason = "ContainersNotInitialized"
    scheduled = _created(pod) + timedelta(seconds=1)
    conditions = [
        _condition("PodReadyToStartContainers", phase in ("Pending", "Running"), start),
        _condition("Initialized", initialized, start, init_reason, init_message),
        _condition("Ready", ready, start, ready_reason, "" if ready else ready_message),
        _condition("ContainersReady", ready, start, ready_reason, "" if ready else ready_message),
        _condition("PodScheduled", True, scheduled),
    ]
    status: Obj = {"phase": phase, **extra, "conditions": conditions}
    status |= {
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "podIP": POD_IP,
        "podIPs": [{"ip": POD_IP}],
        "startTime": _time(start),
        "initContainerStatuses": init,
        "containerStatuses": main,
        "qosClass": qos_class(pod),
    }
    return status


def _times(pod: Mapping[str, Any]) -> tuple[datetime, datetime, datetime]:
    """When the Pod started, its init containers were done, and its run ended."""
    start = _created(pod) + STARTED_AFTER
    return start, start + STARTED_AFTER, start + STARTED_AFTER + RAN_FOR


def _initialized(pod: Mapping[str, Any], start: datetime, done: datetime) -> list[Obj]:
    return [
        _container(pod, spec, _terminated(pod, spec, 0, "Completed", None, start, done))
        for spec in _specs(pod, "initContainers")
    ]


def _ended(
    pod: Mapping[str, Any],
    phase: str,
    exit_code: int,
    reason: str,
    message: str | None = None,
    /,
    **extra: Any,
) -> Obj:
    """A Pod whose init containers completed and whose main containers all ended so."""
    start, done, end = _times(pod)
    main = [
        _container(pod, spec, _terminated(pod, spec, exit_code, reason, message, done, end))
        for spec in _specs(pod, "containers")
    ]
    init = _initialized(pod, start, done)
    return _pod_status(pod, phase, init, main, initialized=True, ready=False, start=start, **extra)


def _message(result: RunResult | Mapping[str, Any] | str | None) -> str | None:
    if isinstance(result, RunResult):
        return result.model_dump_json(by_alias=True, exclude_none=True)
    if isinstance(result, Mapping):
        return json.dumps(result)
    return result


def unschedulable(pod: Mapping[str, Any], message: str = UNSCHEDULABLE_MESSAGE) -> Obj:
    """What the scheduler (not a kubelet) writes for a Pod no node can take: Pending, no node."""
    condition = _condition("PodScheduled", False, _created(pod), "Unschedulable", message)
    return {"phase": "Pending", "conditions": [condition], "qosClass": qos_class(pod)}


def running(pod: Mapping[str, Any]) -> Obj:
    start, done, _ = _times(pod)
    main = [
        _container(pod, spec, {"running": {"startedAt": _time(done)}}, ready=True)
        for spec in _specs(pod, "containers")
    ]
    init = _initialized(pod, start, done)
    return _pod_status(pod, "Running", init, main, initialized=True, ready=True, start=start)


def succeeded(pod: Mapping[str, Any], result: RunResult | Mapping[str, Any] | str | None) -> Obj:
    """The runner exited 0 after writing `result` (None: it wrote nothing)."""
    return _ended(pod, "Succeeded", 0, "Completed", _message(result))


def failed(
    pod: Mapping[str, Any],
    exit_code: int,
    result: RunResult | Mapping[str, Any] | str | None = None,
) -> Obj:
    return _ended(pod, "Failed", exit_code, "Error", _message(result))


def deadline_exceeded(
    pod: Mapping[str, Any], result: RunResult | Mapping[str, Any] | str | None = None
) -> Obj:
    """Killed at activeDeadlineSeconds: SIGTERM, then SIGKILL after the grace period."""
    return _ended(
        pod,
        "Failed",
        SIGKILL_EXIT,
        "Error",
        _message(result),
        reason="DeadlineExceeded",
        message=DEADLINE_MESSAGE,
    )


def evicted(pod: Mapping[str, Any], message: str = EVICTION_MESSAGE) -> Obj:
    status = _ended(pod, "Failed", SIGKILL_EXIT, "Error", reason="Evicted", message=message)
    _, _, end = _times(pod)
    status["conditions"].insert(
        0, _condition("DisruptionTarget", True, end, "TerminationByKubelet", message)
    )
    return status


def _init_ended(pod: Mapping[str, Any], container: str, terminated: Obj) -> Obj:
    """An init container that failed: the Pod fails (restartPolicy Never), nothing else runs."""
    start, _, _ = _times(pod)
    init = [
        _container(pod, spec, terminated)
        if spec["name"] == container
        else _container(pod, spec, {"waiting": {"reason": "PodInitializing"}})
        for spec in _specs(pod, "initContainers")
    ]
    main = [
        _container(pod, spec, {"waiting": {"reason": "PodInitializing"}})
        for spec in _specs(pod, "containers")
    ]
    return _pod_status(pod, "Failed", init, main, initialized=False, ready=False, start=start)


def _spec(pod: Mapping[str, Any], name: str) -> Obj:
    for spec in _specs(pod, "initContainers") + _specs(pod, "containers"):
        if spec["name"] == name:
            return spec
    raise KeyError(f"the Pod has no container {name!r}")


def init_failed(pod: Mapping[str, Any], exit_code: int, message: str) -> Obj:
    """The first init container exited `exit_code`; `message` is its log."""
    spec = _specs(pod, "initContainers")[0]
    start, done, _ = _times(pod)
    terminated = _terminated(pod, spec, exit_code, "Error", message, start, done)
    return _init_ended(pod, spec["name"], terminated)


def oom_killed(pod: Mapping[str, Any], container: str = "runner") -> Obj:
    spec = _spec(pod, container)
    if any(c["name"] == container for c in _specs(pod, "initContainers")):
        start, done, _ = _times(pod)
        terminated = _terminated(pod, spec, SIGKILL_EXIT, "OOMKilled", None, start, done)
        return _init_ended(pod, container, terminated)
    return _ended(pod, "Failed", SIGKILL_EXIT, "OOMKilled")


def _waiting_message(reason: str, image: str) -> str:
    reference = image if "/" in image.split(":")[0] else f"docker.io/library/{image}"
    return {
        "ImagePullBackOff": f'Back-off pulling image "{image}"',
        "ErrImagePull": (
            f'rpc error: code = NotFound desc = failed to pull and unpack image "{reference}": '
            f'failed to resolve reference "{reference}": {reference}: not found'
        ),
        "InvalidImageName": (
            f'Failed to apply default image tag "{image}": couldn\'t parse image name "{image}": '
            "invalid reference format"
        ),
        "CreateContainerConfigError": 'secret "anthropic-key" not found',
    }.get(reason, "failed to create containerd container: context deadline exceeded")


def image_pull_backoff(
    pod: Mapping[str, Any],
    reason: str = "ImagePullBackOff",
    *,
    container: str = "runner",
    message: str | None = None,
) -> Obj:
    """`container` cannot start (its image, or its config); the Pod stays Pending."""
    spec = _spec(pod, container)
    waiting = {"reason": reason, "message": message or _waiting_message(reason, spec["image"])}
    start, done, _ = _times(pod)
    in_init = any(c["name"] == container for c in _specs(pod, "initContainers"))
    if in_init:
        init = [_container(pod, s, {"waiting": waiting}) for s in _specs(pod, "initContainers")]
        blocked = {"waiting": {"reason": "PodInitializing"}}
        main = [_container(pod, s, blocked) for s in _specs(pod, "containers")]
    else:
        init = _initialized(pod, start, done)
        creating = {"reason": "ContainerCreating"}
        main = [
            _container(pod, s, {"waiting": waiting if s["name"] == container else creating})
            for s in _specs(pod, "containers")
        ]
    return _pod_status(
        pod, "Pending", init, main, initialized=not in_init, ready=False, start=start
    )


class Kubelet:
    """Writes Pod statuses through the status subresource, as a node's kubelet does.

    Sync, like the official client: call it from a thread (`asyncio.to_thread`), never on the
    loop that serves the emulator.
    """

    def __init__(self, core: kubernetes.client.CoreV1Api) -> None:
        self.core = core

    def read(self, pod: Mapping[str, Any]) -> Obj:
        """The Pod as stored, as JSON: the client's models would turn times into datetimes."""
        metadata = pod["metadata"]
        response = self.core.read_namespaced_pod_status(
            metadata["name"], metadata["namespace"], _preload_content=False
        )
        return dict(json.loads(response.data))

    def apply(self, pod: Mapping[str, Any], status: Mapping[str, Any]) -> Obj:
        """Make `status` the Pod's status; returns the stored Pod.

        A merge patch keeps fields it does not name, so fields the new status drops (a
        Pending Pod's `reason`, say) are sent as null, as the kubelet's own patch does.
        """
        metadata = pod["metadata"]
        current = self.read(pod).get("status") or {}
        body = {"status": {**dict.fromkeys(current), **status}}
        response = self.core.patch_namespaced_pod_status(
            metadata["name"],
            metadata["namespace"],
            body,
            _content_type="application/merge-patch+json",
            _preload_content=False,
        )
        return dict(json.loads(response.data))
