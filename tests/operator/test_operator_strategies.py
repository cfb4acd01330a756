"""Each failure strategy, applied by the operator to Pods that fail."""

from __future__ import annotations

import pytest

from tests.operator import manifests as m
from tests.operator.harness import Cluster, RunningOperator
from tests.support import kubelet

pytestmark = pytest.mark.asyncio


async def test_continue_others_fails_the_task_and_its_dependents_while_others_succeed(
    cluster: Cluster, operator: RunningOperator
) -> None:
    tickets = [m.ticket("ok"), m.ticket("bad"), m.ticket("child", "bad")]
    await cluster.apply(*m.base("ContinueOthers"), m.batch("b1", tickets))
    await cluster.until_pods("b1-ok-develop-1", "b1-bad-develop-1")
    await cluster.fail("b1-bad-develop-1", "CriteriaFailed", "tests_pass: 2 tests failed")
    await cluster.until_phase("AgentTask", "b1-bad", "Failed")
    await cluster.until_phase("AgentTask", "b1-child", "DependencyFailed")
    attempt = cluster.attempt("b1-bad-develop-1")
    assert attempt["reason"] == "CriteriaFailed"
    assert attempt["message"] == "tests_pass: 2 tests failed"
    await cluster.succeed("b1-ok-develop-1")
    await cluster.until_pods("b1-ok-qa-1")
    await cluster.succeed("b1-ok-qa-1")
    await cluster.until_phase("TicketBatch", "b1", "Failed")
    assert cluster.phase("AgentTask", "b1-ok") == "Succeeded"
    assert not any(name.startswith("b1-child") for name in cluster.pod_names())
    await cluster.until_events("BatchFailed")
    assert cluster.events("RunFailed")


async def test_abort_all_stops_a_running_sibling_pod_and_never_starts_the_rest(
    cluster: Cluster, operator: RunningOperator
) -> None:
    tickets = [m.ticket("slow"), m.ticket("bad"), m.ticket("later", "slow")]
    await cluster.apply(*m.base("AbortAll"), m.batch("b1", tickets))
    await cluster.until_pods("b1-slow-develop-1", "b1-bad-develop-1")
    await cluster.set_pod_status("b1-slow-develop-1", kubelet.running)
    await cluster.fail("b1-bad-develop-1")

    def stopped() -> bool:
        pod = cluster.get("pods", "b1-slow-develop-1")
        return pod["spec"].get("activeDeadlineSeconds") == 1

    await cluster.until(stopped, what="the sibling's Pod to be stopped")
    pod = cluster.get("pods", "b1-slow-develop-1")
    assert pod["metadata"]["annotations"]["agentfleet.dev/stop-reason"] == "AbortAll"
    await cluster.set_pod_status("b1-slow-develop-1", kubelet.deadline_exceeded)
    await cluster.until_phase("TicketBatch", "b1", "Failed")
    assert cluster.phase("AgentTask", "b1-slow") == "Aborted"
    assert cluster.phase("AgentTask", "b1-later") == "Aborted"
    assert cluster.attempt("b1-slow-develop-1")["reason"] == "AbortAll"
    assert not any(name.startswith("b1-later") for name in cluster.pod_names())


async def test_retry_with_different_agent_gives_the_stage_to_the_next_agent(
    cluster: Cluster, operator: RunningOperator
) -> None:
    docs = [
        m.project(),
        m.agent("dev-z", "Development"),
        m.agent("dev-a", "Development"),
        m.agent("qa", "QualityAssurance"),
        m.workflow("RetryWithDifferentAgent", max_retries=1),
    ]
    batch = m.batch("b1", [m.ticket("x")], agentAssignments={"Development": "dev-z"})
    await cluster.apply(*docs, batch)
    await cluster.until_pods("b1-x-develop-1")
    first = cluster.get("pods", "b1-x-develop-1")
    assert first["metadata"]["labels"]["agentfleet.dev/agent"] == "dev-z"
    await cluster.fail("b1-x-develop-1")
    await cluster.until_pods("b1-x-develop-2")
    second = cluster.get("pods", "b1-x-develop-2")
    assert second["metadata"]["labels"]["agentfleet.dev/agent"] == "dev-a"
    await cluster.succeed("b1-x-develop-2")
    await cluster.until_pods("b1-x-qa-1")
    await cluster.succeed("b1-x-qa-1")
    await cluster.until_phase("TicketBatch", "b1", "Succeeded")


async def test_escalate_to_human_waits_until_a_retry_annotation_then_runs_again(
    cluster: Cluster, operator: RunningOperator
) -> None:
    await cluster.apply(*m.base("EscalateToHuman"), m.batch("b1", [m.ticket("x")]))
    await cluster.until_pods("b1-x-develop-1")
    await cluster.fail("b1-x-develop-1")
    await cluster.until_phase("AgentTask", "b1-x", "Escalated")
    await cluster.settle(0.5)
    assert cluster.phase("TicketBatch", "b1") == "Processing"
    assert cluster.pod_names() == {"b1-x-develop-1"}

    await cluster.annotate("AgentTask", "b1-x", "agentfleet.dev/action", "retry")
    await cluster.until_pods("b1-x-develop-2")
    await cluster.until(
        lambda: (
            "agentfleet.dev/action"
            not in cluster.get("AgentTask", "b1-x")["metadata"].get("annotations", {})
        ),
        what="the one-shot action annotation to be cleared",
    )
    await cluster.succeed("b1-x-develop-2")
    await cluster.until_pods("b1-x-qa-1")
    await cluster.succeed("b1-x-qa-1")
    await cluster.until_phase("TicketBatch", "b1", "Succeeded")


async def test_escalate_to_human_then_skip_lets_the_dependents_run(
    cluster: Cluster, operator: RunningOperator
) -> None:
    tickets = [m.ticket("bad"), m.ticket("child", "bad")]
    await cluster.apply(*m.base("EscalateToHuman"), m.batch("b1", tickets))
    await cluster.until_pods("b1-bad-develop-1")
    await cluster.fail("b1-bad-develop-1")
    await cluster.until_phase("AgentTask", "b1-bad", "Escalated")
    await cluster.annotate("AgentTask", "b1-bad", "agentfleet.dev/action", "skip")
    await cluster.until_phase("AgentTask", "b1-bad", "Skipped")
    await cluster.until_pods("b1-child-develop-1")
