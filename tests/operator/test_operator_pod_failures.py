"""What the kubelet reports of a failed Pod reaches the attempt and the task as a clear reason."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from agentfleet.operator.settings import OperatorSettings
from tests.operator import manifests as m
from tests.operator.harness import NAMESPACE, Cluster, RunningOperator
from tests.support import kubelet

pytestmark = pytest.mark.asyncio

POD = "b1-x-develop-1"


async def start_one(cluster: Cluster) -> None:
    await cluster.apply(*m.base(), m.batch("b1", [m.ticket("x")]))
    await cluster.until_pods(POD)


@pytest.mark.parametrize(
    ("status", "reason", "words"),
    [
        (kubelet.oom_killed, "OOMKilled", "512Mi"),
        (kubelet.deadline_exceeded, "DeadlineExceeded", "activeDeadlineSeconds"),
        (kubelet.evicted, "Evicted", "low on resource"),
        (lambda pod: kubelet.failed(pod, 3), "Error", "code 3"),
        (
            lambda pod: kubelet.init_failed(pod, 128, "fatal: repository not found"),
            "Error",
            "repository not found",
        ),
    ],
    ids=["oom-killed", "deadline-exceeded", "evicted", "error-exit-code", "worktree-failed"],
)
async def test_a_failed_pod_fails_its_attempt_with_the_kubelets_reason(
    cluster: Cluster,
    operator: RunningOperator,
    status: Callable[[dict[str, Any]], dict[str, Any]],
    reason: str,
    words: str,
) -> None:
    await start_one(cluster)
    await cluster.set_pod_status(POD, status)
    attempt = await cluster.until_attempt(POD, "Failed")
    assert attempt["reason"] == reason
    assert words in attempt["message"]
    await cluster.until_phase("AgentTask", "b1-x", "Failed")
    condition = {c["type"]: c for c in cluster.status("AgentTask", "b1-x")["conditions"]}
    assert condition["Succeeded"]["status"] == "False"
    warnings = await cluster.until_events("RunFailed", "b1-x")
    assert warnings
    assert warnings[0]["type"] == "Warning"
    assert reason in warnings[0]["message"] or words in warnings[0]["message"]


async def test_an_image_that_cannot_be_pulled_fails_the_run_only_after_the_grace_period(
    cluster: Cluster,
) -> None:
    settings = OperatorSettings(
        namespaces=(NAMESPACE,),
        liveness="",
        metrics_port=0,
        resync_seconds=0.3,
        image_pull_grace_seconds=2,
    )
    running = await cluster.start_operator(settings)
    try:
        await start_one(cluster)
        await cluster.set_pod_status(POD, kubelet.image_pull_backoff)
        await cluster.settle(0.8)
        assert cluster.attempt(POD)["phase"] == "Running", "failed before the grace period"
        attempt = await cluster.until_attempt(POD, "Failed", timeout=10)
        assert attempt["reason"] == "ImagePullBackOff"
        assert "ghcr.io" in attempt["message"] or "image" in attempt["message"]
        await cluster.until(
            lambda: cluster.get("pods", POD)["spec"].get("activeDeadlineSeconds") == 1,
            what="the stuck Pod to be stopped",
        )
    finally:
        await asyncio.to_thread(running.stop)


async def test_an_agent_asking_for_network_isolation_gets_a_network_policy_before_its_pod(
    cluster: Cluster, operator: RunningOperator
) -> None:
    isolated = m.agent(
        "dev",
        "Development",
        environmentRequirements={
            "resourceLimits": {"memoryMb": 512},
            "networkIsolation": {"enabled": True, "allowedEgress": ["10.20.0.0/16"]},
        },
    )
    docs = [m.project(), isolated, m.agent("qa", "QualityAssurance"), m.workflow()]
    await cluster.apply(*docs, m.batch("b1", [m.ticket("x")]))
    await cluster.until_pods(POD)
    policy = cluster.get("networkpolicies", POD)
    assert policy is not None
    egress = policy["spec"]["egress"]
    assert {"ipBlock": {"cidr": "10.20.0.0/16"}} in egress[-1]["to"]
    policy_rv = int(policy["metadata"]["resourceVersion"])
    pod_rv = int(cluster.get("pods", POD)["metadata"]["resourceVersion"])
    assert policy_rv < pod_rv, "the Pod existed before its NetworkPolicy"


async def test_a_run_whose_pod_cannot_be_built_fails_with_the_reason_instead_of_retrying(
    cluster: Cluster, operator: RunningOperator
) -> None:
    unreachable = m.agent(
        "dev",
        "Development",
        environmentRequirements={
            "networkIsolation": {"enabled": True, "allowedEgress": ["api.example.com"]},
        },
    )
    docs = [m.project(), unreachable, m.agent("qa", "QualityAssurance"), m.workflow()]
    await cluster.apply(*docs, m.batch("b1", [m.ticket("x")]))
    await cluster.until_phase("AgentTask", "b1-x", "Failed")
    attempt = cluster.attempt(POD)
    assert attempt["reason"] == "InvalidRun"
    assert "api.example.com" in attempt["message"]
    assert not cluster.pods()
