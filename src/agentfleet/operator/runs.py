"""A run's Pod, read back as the ObservedRun the core decides on: no API call, no clock.

The Pod alone says what happened: its identity is in the run-spec annotation (labels as a
fallback), the runner's RunResult is the runner container's termination message, and a stop
the operator asked for is in two annotations, since the kubelet only reports the deadline it
was made to enforce.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pydantic import ValidationError

from ..core.naming import REFINE_STAGE
from ..models.run import AttemptPhase, ObservedRun, RunKind, RunPhase, RunResult
from ..runner.result import TERMINATION_MESSAGE_BYTES
from .metadata import AGENT_LABEL, ATTEMPT_LABEL, BATCH_LABEL, RUN_LABEL, STAGE_LABEL, TASK_LABEL
from .pods import RUN_SPEC_ANNOTATION

STOP_REASON_ANNOTATION: Final = "agentfleet.dev/stop-reason"
STOP_MESSAGE_ANNOTATION: Final = "agentfleet.dev/stop-message"
RUNNER_CONTAINER: Final = "runner"
PREPARE_CONTAINER: Final = "prepare-worktree"

START_FAILURES: Final = frozenset(
    {"ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError", "CreateContainerError"}
)
"""Waiting reasons that may heal (a pushed image, a created Secret): failures after a grace."""
HOPELESS_START_FAILURES: Final = frozenset({"InvalidImageName", "ErrImageNeverPull"})
"""Waiting reasons nothing but a new Pod can heal: failures at once."""

_INIT_MESSAGE_BYTES = 1024
_SPEC_KEYS = {key: key for key in ("name", "kind", "batch", "task", "stage", "attempt")}
_SPEC_KEYS["agentName"] = "agent"
_LABEL_KEYS = {RUN_LABEL: "name", BATCH_LABEL: "batch", TASK_LABEL: "task", STAGE_LABEL: "stage"}
_LABEL_KEYS |= {ATTEMPT_LABEL: "attempt", AGENT_LABEL: "agent"}


def stop_patch(reason: str, message: str, *, active_deadline_seconds: int = 1) -> dict[str, Any]:
    """The JSON merge patch that stops a run: the why for us, a short deadline for the kubelet.

    A deadline, not a delete: the Pod stays, with its logs and statuses, until its owner goes.
    """
    return {
        "metadata": {
            "annotations": {STOP_REASON_ANNOTATION: reason, STOP_MESSAGE_ANNOTATION: message}
        },
        "spec": {"activeDeadlineSeconds": active_deadline_seconds},
    }


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time as the API writes it; naive times are taken as UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_result(message: Any) -> RunResult | None:
    """The runner's RunResult, or None when the message is missing, cut short or garbage."""
    if not isinstance(message, str) or not message.strip():
        return None
    try:
        return RunResult.model_validate_json(message)
    except (ValidationError, ValueError):
        return None


def run_identity(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """Who the run is, from the spec annotation then the labels; None for a Pod not ours."""
    metadata = pod.get("metadata") or {}
    fields: dict[str, Any] = {}
    try:
        spec = json.loads((metadata.get("annotations") or {}).get(RUN_SPEC_ANNOTATION, ""))
    except (TypeError, ValueError):
        spec = None
    if isinstance(spec, dict):
        fields = {
            key: spec[wire] for wire, key in _SPEC_KEYS.items() if _readable(key, spec.get(wire))
        }
    labels = metadata.get("labels") or {}
    for label, key in _LABEL_KEYS.items():
        if key not in fields and labels.get(label):
            fields[key] = labels[label]
    if not all(fields.get(key) for key in ("name", "stage", "agent")):
        return None
    refinement = not fields.get("task") and fields["stage"] == REFINE_STAGE
    try:
        fields["attempt"] = int(fields["attempt"])
        fields["kind"] = RunKind(fields.get("kind", RunKind.REFINEMENT if refinement else "Stage"))
    except (KeyError, TypeError, ValueError):
        return None
    return fields


def _readable(key: str, value: Any) -> bool:
    """A spec value of the expected type: anything else falls back to the label."""
    if key == "attempt" and isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, str) and value != ""


def observe_pod(
    pod: Mapping[str, Any], *, now: datetime, image_pull_grace_seconds: float
) -> ObservedRun | None:
    """The run a Pod holds, as the core needs it; None when the Pod is not a run's."""
    identity = run_identity(pod)
    if identity is None:
        return None
    status = pod.get("status") or {}
    phase = status.get("phase")
    start = _runner_start(status) or parse_time(status.get("startTime"))
    runner = _terminated(status.get("containerStatuses"), RUNNER_CONTAINER)
    if phase in ("Succeeded", "Failed") or (phase == "Running" and runner is not None):
        ended_well = runner is not None and runner.get("exitCode") == 0
        succeeded = phase == "Succeeded" or (phase == "Running" and ended_well)
        outcome = _finished(pod, succeeded, runner)
        finish = _finish_time(status, runner) or now
        return ObservedRun(**identity, **outcome, start_time=start, finish_time=finish)
    if phase == "Pending" or phase is None:
        failure = _start_failure(pod, now, image_pull_grace_seconds)
        if failure is not None:
            return ObservedRun(**identity, **failure, start_time=start, finish_time=now)
        return ObservedRun(**identity, phase=RunPhase.PENDING, start_time=start)
    # Running, or Unknown (node unreachable): the Pod's deadline still bounds it.
    return ObservedRun(**identity, phase=RunPhase.RUNNING, start_time=start)


def _failure(
    reason: str, message: str, exit_code: Any, result: RunResult | None = None
) -> dict[str, Any]:
    outcome = {"reason": reason, "message": message, "exit_code": exit_code, "result": result}
    return {"phase": RunPhase.FAILED, **outcome}


def _finished(
    pod: Mapping[str, Any], succeeded: bool, runner: Mapping[str, Any] | None
) -> dict[str, Any]:
    status = pod.get("status") or {}
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    result = parse_result(runner.get("message")) if runner else None
    exit_code = runner.get("exitCode") if runner else None
    if result is None and runner and _cut(runner.get("message")):
        return _failure(
            "ResultTooLarge",
            "the runner's result is larger than the 4 KiB a Pod's termination message holds "
            "(a refinement answer for many tickets): set spec.refinement.batchSize lower",
            exit_code,
        )
    stop = annotations.get(STOP_REASON_ANNOTATION)
    if succeeded and not stop:
        return {"phase": RunPhase.SUCCEEDED, "result": result, "exit_code": exit_code}
    cause = None
    if stop:
        cause = (stop, annotations.get(STOP_MESSAGE_ANNOTATION, ""))
    elif status.get("reason") == "DeadlineExceeded":
        deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
        cause = ("DeadlineExceeded", f"ran past activeDeadlineSeconds={deadline}")
    elif status.get("reason") == "Evicted":
        cause = ("Evicted", f"evicted by the node: {status.get('message') or 'no reason given'}")
    else:
        for name, terminated in _terminations(status):
            if terminated.get("reason") == "OOMKilled":
                cause = ("OOMKilled", _oom_message(pod, name))
                exit_code = exit_code if exit_code is not None else terminated.get("exitCode")
                break
    if cause is not None:
        if result is not None:  # keep what the run cost and made; the Pod's end says why
            update = {"outcome": AttemptPhase.FAILED, "reason": cause[0], "message": cause[1]}
            result = result.model_copy(update=update)
        return _failure(*cause, exit_code, result)
    prepare = _terminated(status.get("initContainerStatuses"), PREPARE_CONTAINER)
    if prepare is not None and prepare.get("exitCode"):
        code = prepare["exitCode"]
        message = f"preparing the worktree failed (exit code {code})"
        output = _tail(prepare.get("message") or "")
        return _failure("Error", f"{message}: {output}" if output else message, code)
    if result is not None:
        message = result.message or _exit_message(exit_code)
        return _failure(result.reason or "Error", message, exit_code, result)
    return _failure("Error", _exit_message(exit_code), exit_code)


def _cut(message: Any) -> bool:
    """A message the kubelet cut at 4 KiB: it fills the limit and does not parse."""
    return isinstance(message, str) and len(message.encode()) >= TERMINATION_MESSAGE_BYTES - 16


def _runner_start(status: Mapping[str, Any]) -> datetime | None:
    """When the runner container started: a stage's time is the agent's, not the clone's."""
    for container in status.get("containerStatuses") or []:
        if container.get("name") == RUNNER_CONTAINER:
            state = container.get("state") or {}
            for key in ("running", "terminated"):
                started = parse_time((state.get(key) or {}).get("startedAt"))
                if started is not None:
                    return started
    return None


def _condition_time(status: Mapping[str, Any], kind: str) -> datetime | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return parse_time(condition.get("lastTransitionTime"))
    return None


def _start_failure(pod: Mapping[str, Any], now: datetime, grace: float) -> dict[str, Any] | None:
    """A container that cannot start, once waiting longer cannot help.

    The grace counts from when the container could first start: the init container once
    the Pod is on a node, the runner once the init container is done. Time spent waiting
    for a node or cloning is not time spent failing to pull.
    """
    created = parse_time((pod.get("metadata") or {}).get("creationTimestamp"))
    status = pod.get("status") or {}
    on_node = parse_time(status.get("startTime")) or created
    initialized = _condition_time(status, "Initialized") or on_node
    for key in ("initContainerStatuses", "containerStatuses"):
        since = on_node if key == "initContainerStatuses" else initialized
        waited = now - since if since else timedelta(0)
        for container in status.get(key) or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason in HOPELESS_START_FAILURES or (
                reason in START_FAILURES and waited >= timedelta(seconds=grace)
            ):
                name = container.get("name")
                image = _spec_container(pod, name).get("image") or container.get("image")
                detail = waiting.get("message") or reason
                message = f"container {name} cannot start with image {image}: {detail}"
                return _failure(reason, message, None)
    return None


def _terminations(status: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(key) or []:
            terminated = (container.get("state") or {}).get("terminated")
            if terminated:
                yield container.get("name", ""), terminated


def _terminated(statuses: Any, name: str) -> Mapping[str, Any] | None:
    for container in statuses or []:
        if container.get("name") == name:
            terminated: Mapping[str, Any] | None = (container.get("state") or {}).get("terminated")
            return terminated or None
    return None


def _finish_time(status: Mapping[str, Any], runner: Mapping[str, Any] | None) -> datetime | None:
    """The runner's end, else the last container's: an init failure ends the run too."""
    if runner and (finished := parse_time(runner.get("finishedAt"))):
        return finished
    times = [parse_time(t.get("finishedAt")) for _, t in _terminations(status)]
    return max((t for t in times if t is not None), default=None)


def _spec_container(pod: Mapping[str, Any], name: str | None) -> Mapping[str, Any]:
    spec = pod.get("spec") or {}
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    found: Mapping[str, Any] = next((c for c in containers if c.get("name") == name), {})
    return found


def _oom_message(pod: Mapping[str, Any], name: str) -> str:
    limit = ((_spec_container(pod, name).get("resources") or {}).get("limits") or {}).get("memory")
    if limit:
        return f"container {name} passed its memory limit of {limit}"
    return f"container {name} ran out of memory (it has no memory limit; the node ran short)"


def _exit_message(exit_code: int | None) -> str:
    if exit_code is None:
        return f"container {RUNNER_CONTAINER} failed without an exit code"
    message = f"container {RUNNER_CONTAINER} exited with code {exit_code}"
    if exit_code > 128:
        number = exit_code - 128
        names = {s.value: s.name for s in signal.Signals}
        message += f" (killed by signal {number}, {names.get(number, 'unknown')})"
    return message


def _tail(text: str) -> str:
    """The end of a log: where a failed command says why. The kubelet already cut it to 2 KiB."""
    text = text.strip()
    data = text.encode()
    if len(data) <= _INIT_MESSAGE_BYTES:
        return text
    return "..." + data[-_INIT_MESSAGE_BYTES:].decode(errors="ignore").lstrip()
