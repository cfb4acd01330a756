"""The kubelet the tests play: statuses a real node would write, read back as documented."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes.client
import kubernetes_validate
import pytest
import pytest_asyncio

from agentfleet.models.run import AttemptPhase, RunPhase, RunResult
from agentfleet.operator.runs import observe_pod, parse_time
from tests.operator.test_pods import K8S_VERSIONS, NAMESPACE, full_pod
from tests.support import kubelet
from tests.support.emulator import FilledEmulator, serve_emulator

Obj = dict[str, Any]
CREATED = datetime(2026, 11, 25, 3, 21, 3, tzinfo=UTC)
GRACE = 60.0
NOW = CREATED + timedelta(seconds=GRACE) + 2 * kubelet.STARTED_AFTER
"""The grace counts from when the container could start: after the init container."""
RESULT = RunResult(outcome=AttemptPhase.SUCCEEDED, reason="Succeeded", exit_code=0)

Builder = Callable[[Obj], Obj]
BUILDERS: dict[str, tuple[Builder, RunPhase, str]] = {
    "unschedulable": (kubelet.unschedulable, RunPhase.PENDING, ""),
    "running": (kubelet.running, RunPhase.RUNNING, ""),
    "succeeded": (lambda pod: kubelet.succeeded(pod, RESULT), RunPhase.SUCCEEDED, ""),
    "succeeded-without-result": (
        lambda pod: kubelet.succeeded(pod, None),
        RunPhase.SUCCEEDED,
        "",
    ),
    "failed": (lambda pod: kubelet.failed(pod, 1), RunPhase.FAILED, "Error"),
    "failed-with-result": (
        lambda pod: kubelet.failed(pod, 1, {"outcome": "Failed", "reason": "AgentFailed"}),
        RunPhase.FAILED,
        "AgentFailed",
    ),
    "oom-killed": (kubelet.oom_killed, RunPhase.FAILED, "OOMKilled"),
    "init-oom-killed": (
        lambda pod: kubelet.oom_killed(pod, "prepare-worktree"),
        RunPhase.FAILED,
        "OOMKilled",
    ),
    "deadline-exceeded": (kubelet.deadline_exceeded, RunPhase.FAILED, "DeadlineExceeded"),
    "evicted": (kubelet.evicted, RunPhase.FAILED, "Evicted"),
    "image-pull-backoff": (kubelet.image_pull_backoff, RunPhase.FAILED, "ImagePullBackOff"),
    "init-err-image-pull": (
        lambda pod: kubelet.image_pull_backoff(pod, "ErrImagePull", container="prepare-worktree"),
        RunPhase.FAILED,
        "ErrImagePull",
    ),
    "init-failed": (
        lambda pod: kubelet.init_failed(pod, 128, "fatal: repository not found"),
        RunPhase.FAILED,
        "Error",
    ),
}


@pytest.fixture
def pod() -> Obj:
    pod = full_pod()
    pod["metadata"]["creationTimestamp"] = CREATED.strftime("%Y-%m-%dT%H:%M:%SZ")
    return pod


def containers(status: Obj) -> Iterator[Obj]:
    yield from status.get("initContainerStatuses", [])
    yield from status.get("containerStatuses", [])


@pytest.mark.parametrize("case", BUILDERS)
def test_each_status_reads_back_as_its_documented_outcome(pod: Obj, case: str) -> None:
    build, phase, reason = BUILDERS[case]
    run = observe_pod({**pod, "status": build(pod)}, now=NOW, image_pull_grace_seconds=GRACE)
    assert run is not None
    assert (run.phase, run.reason) == (phase, reason)


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
@pytest.mark.parametrize("case", BUILDERS)
def test_each_status_is_a_valid_pod_status(pod: Obj, case: str, k8s_version: str) -> None:
    """Strict: a misspelt field or a wrong type fails, as the API reference defines them."""
    kubernetes_validate.validate(
        {**pod, "status": BUILDERS[case][0](pod)}, k8s_version, strict=True
    )


@pytest.mark.parametrize("case", BUILDERS)
def test_each_container_status_is_in_one_state_with_ids_once_created(pod: Obj, case: str) -> None:
    status = BUILDERS[case][0](pod)
    for container in containers(status):
        (state,) = container["state"]
        created = state != "waiting"
        assert bool(container["imageID"]) == created
        assert ("containerID" in container) == created
        assert container["started"] == (state == "running")
        if state == "terminated":
            terminated = container["state"]["terminated"]
            assert terminated["containerID"] == container["containerID"]
            assert parse_time(terminated["startedAt"]) <= parse_time(terminated["finishedAt"])
            assert terminated["finishedAt"].endswith("Z")


@pytest.mark.parametrize("case", BUILDERS)
def test_builders_are_pure(pod: Obj, case: str) -> None:
    before = copy.deepcopy(pod)
    assert BUILDERS[case][0](pod) == BUILDERS[case][0](pod)
    assert pod == before


def test_times_start_from_the_pods_creation(pod: Obj) -> None:
    status = kubelet.succeeded(pod, RESULT)
    assert parse_time(status["startTime"]) == CREATED + kubelet.STARTED_AFTER
    unsaved = full_pod()
    assert parse_time(kubelet.running(unsaved)["startTime"]) == (
        kubelet.CREATED + kubelet.STARTED_AFTER
    )


def test_guaranteed_qos_when_requests_equal_limits(pod: Obj) -> None:
    assert kubelet.running(pod)["qosClass"] == "Guaranteed"
    pod["spec"]["containers"][0]["resources"]["requests"]["memory"] = "1Gi"
    assert kubelet.running(pod)["qosClass"] == "Burstable"
    for container in [*pod["spec"]["containers"], *pod["spec"]["initContainers"]]:
        container.pop("resources")
    assert kubelet.running(pod)["qosClass"] == "BestEffort"


def test_file_termination_message_is_cut_at_4_kib(pod: Obj) -> None:
    status = kubelet.failed(pod, 1, "é" * 4000)
    message = status["containerStatuses"][0]["state"]["terminated"]["message"]
    assert len(message.encode()) <= kubelet.MAX_TERMINATION_MESSAGE_BYTES
    assert message == "é" * (kubelet.MAX_TERMINATION_MESSAGE_BYTES // 2)


def test_init_container_message_is_the_logs_last_80_lines_and_2_kib(pod: Obj) -> None:
    log = "".join(f"line {n}\n" for n in range(200))
    statuses = kubelet.init_failed(pod, 1, log)["initContainerStatuses"]
    assert statuses[0]["state"]["terminated"]["message"] == "".join(
        f"line {n}\n" for n in range(120, 200)
    )
    long_lines = "".join(f"{n:04d}{'x' * 96}\n" for n in range(50))
    cut = kubelet.termination_message(long_lines, "FallbackToLogsOnError")
    assert len(cut.encode()) == kubelet.FALLBACK_LOG_BYTES
    assert cut.endswith(f"0049{'x' * 96}\n")


def test_failed_init_container_leaves_the_runner_waiting_and_the_pod_uninitialized(
    pod: Obj,
) -> None:
    status = kubelet.init_failed(pod, 2, "boom")
    assert status["phase"] == "Failed"
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    initialized = next(c for c in status["conditions"] if c["type"] == "Initialized")
    assert initialized["status"] == "False"
    assert initialized["message"] == "containers with incomplete status: [prepare-worktree]"


def test_unknown_container_is_refused(pod: Obj) -> None:
    with pytest.raises(KeyError, match="sidecar"):
        kubelet.oom_killed(pod, "sidecar")


# The Kubelet helper, over HTTP against the emulator


@pytest_asyncio.fixture
async def emu() -> AsyncIterator[FilledEmulator]:
    async with serve_emulator() as emulator:
        yield emulator


@pytest.fixture
def core(emu: FilledEmulator) -> Iterator[kubernetes.client.CoreV1Api]:
    config = kubernetes.client.Configuration()
    config.host = str(emu.url).rstrip("/")
    with kubernetes.client.ApiClient(config) as client:
        yield kubernetes.client.CoreV1Api(client)


@pytest.mark.asyncio
async def test_kubelet_writes_the_status_and_leaves_the_spec_alone(
    emu: FilledEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    pod = full_pod()
    await asyncio.to_thread(core.create_namespaced_pod, NAMESPACE, pod)
    node = kubelet.Kubelet(core)
    assert (await asyncio.to_thread(node.read, pod))["status"] == {"phase": "Pending"}

    status = kubelet.succeeded(pod, RESULT)
    stored = await asyncio.to_thread(node.apply, pod, status)
    assert stored["status"] == status
    assert stored["spec"] == pod["spec"]
    kept = emu.get_object("pods", NAMESPACE, pod["metadata"]["name"])
    assert kept["status"] == status
    assert kept["spec"] == pod["spec"]
    run = observe_pod(kept, now=NOW, image_pull_grace_seconds=GRACE)
    assert run is not None
    assert (run.phase, run.result) == (RunPhase.SUCCEEDED, RESULT)


@pytest.mark.asyncio
async def test_kubelet_drops_what_the_new_status_no_longer_says(
    core: kubernetes.client.CoreV1Api,
) -> None:
    pod = full_pod()
    await asyncio.to_thread(core.create_namespaced_pod, NAMESPACE, pod)
    node = kubelet.Kubelet(core)
    await asyncio.to_thread(node.apply, pod, kubelet.evicted(pod))
    stored = await asyncio.to_thread(node.apply, pod, kubelet.running(pod))
    assert "reason" not in stored["status"]
    assert stored["status"] == kubelet.running(pod)
