"""People steer a batch with `kubectl annotate`: approvals, and abort."""

from __future__ import annotations

import pytest

from tests.operator import manifests as m
from tests.operator.harness import Cluster, RunningOperator
from tests.support import kubelet

pytestmark = pytest.mark.asyncio


async def test_a_stage_needing_approval_waits_for_the_approve_annotation(
    cluster: Cluster, operator: RunningOperator
) -> None:
    tickets = [m.ticket("x"), m.ticket("after", "x")]
    await cluster.apply(*m.base(qa_approvals=1), m.batch("b1", tickets))
    await cluster.until_pods("b1-x-develop-1")
    await cluster.succeed("b1-x-develop-1")
    await cluster.until_pods("b1-x-qa-1")
    await cluster.succeed("b1-x-qa-1")
    await cluster.until_phase("AgentTask", "b1-x", "AwaitingApproval")
    await cluster.until_events("ApprovalRequired", "b1-x")
    assert [e["involvedObject"]["name"] for e in cluster.events("ApprovalRequired")] == ["b1-x"]
    await cluster.settle(0.5)
    assert not any(name.startswith("b1-after") for name in cluster.pod_names())

    await cluster.annotate("AgentTask", "b1-x", "agentfleet.dev/approve-qa", "alice")
    await cluster.until_phase("AgentTask", "b1-x", "Succeeded")
    qa = next(s for s in cluster.status("AgentTask", "b1-x")["stages"] if s["name"] == "qa")
    assert qa["approvals"] == ["alice"]
    await cluster.until_pods("b1-after-develop-1")


async def test_abort_annotation_on_a_batch_stops_its_pods_and_aborts_its_tasks(
    cluster: Cluster, operator: RunningOperator
) -> None:
    tickets = [m.ticket("slow"), m.ticket("next", "slow")]
    await cluster.apply(*m.base(), m.batch("b1", tickets))
    await cluster.until_pods("b1-slow-develop-1")
    await cluster.set_pod_status("b1-slow-develop-1", kubelet.running)
    await cluster.annotate("TicketBatch", "b1", "agentfleet.dev/action", "abort")

    def stop_reason() -> str | None:
        pod = cluster.get("pods", "b1-slow-develop-1")
        return pod["metadata"].get("annotations", {}).get("agentfleet.dev/stop-reason")

    await cluster.until(stop_reason, what="the Pod to be stopped")
    await cluster.set_pod_status("b1-slow-develop-1", kubelet.deadline_exceeded)
    await cluster.until_phase("TicketBatch", "b1", "Failed")
    assert cluster.phase("AgentTask", "b1-slow") == "Aborted"
    assert cluster.phase("AgentTask", "b1-next") == "Aborted"
    assert cluster.pod_names() == {"b1-slow-develop-1"}
