"""The operator runs batches as Pods: dependencies, limits, ownership, status and Events."""

from __future__ import annotations

import asyncio
import json

import pytest

from agentfleet.operator.settings import OperatorSettings
from tests.operator import manifests as m
from tests.operator.harness import NAMESPACE, Cluster, RunningOperator

pytestmark = pytest.mark.asyncio


async def test_batch_with_dependencies_runs_develop_then_qa_in_order(
    cluster: Cluster, operator: RunningOperator
) -> None:
    await cluster.apply(
        *m.base(),
        m.batch("b1", [m.ticket("api"), m.ticket("ui", "api"), m.ticket("docs")]),
    )
    await cluster.until_pods("b1-api-develop-1", "b1-docs-develop-1")
    await cluster.settle(0.3)
    assert "b1-ui-develop-1" not in cluster.pod_names()
    assert cluster.phase("AgentTask", "b1-api") == "Running"
    await cluster.succeed("b1-api-develop-1", commit="a" * 40)
    await cluster.until_pods("b1-api-qa-1")
    await cluster.succeed("b1-docs-develop-1")
    await cluster.until_pods("b1-docs-qa-1")
    await cluster.settle(0.3)
    assert "b1-ui-develop-1" not in cluster.pod_names(), "ui started before api's qa passed"
    await cluster.succeed("b1-api-qa-1")
    await cluster.until_pods("b1-ui-develop-1")
    for name in ("b1-docs-qa-1", "b1-ui-develop-1"):
        await cluster.succeed(name)
    await cluster.until_pods("b1-ui-qa-1")
    await cluster.succeed("b1-ui-qa-1")
    await cluster.until_phase("TicketBatch", "b1", "Succeeded")

    assert len(cluster.pods()) == 6
    status = cluster.status("TicketBatch", "b1")
    assert status["counts"]["succeeded"] == 3
    assert (
        status["observedGeneration"] == cluster.get("TicketBatch", "b1")["metadata"]["generation"]
    )
    assert {c["type"]: c["status"] for c in status["conditions"]}["Succeeded"] == "True"
    api = cluster.status("AgentTask", "b1-api")
    develop = next(s for s in api["stages"] if s["name"] == "develop")
    assert develop["attempts"][0]["commit"] == "a" * 40
    expected = {"TaskCreated", "RunStarted", "RunSucceeded", "BatchSucceeded"}
    # Events go out after the round's status writes: wait for them too.
    await cluster.until(
        lambda: expected <= {e["reason"] for e in cluster.events()}, what="the Events"
    )


async def test_tasks_pods_and_the_workspace_claim_are_owned_for_garbage_collection(
    cluster: Cluster, operator: RunningOperator
) -> None:
    await cluster.apply(*m.base(), m.batch("b1", [m.ticket("api")]))
    await cluster.until_pods("b1-api-develop-1")
    batch = cluster.get("TicketBatch", "b1")
    task = cluster.get("AgentTask", "b1-api")
    pod = cluster.get("pods", "b1-api-develop-1")
    claim = cluster.get("persistentvolumeclaims", "b1-workspace")
    assert task["metadata"]["ownerReferences"][0]["uid"] == batch["metadata"]["uid"]
    assert pod["metadata"]["ownerReferences"][0]["uid"] == task["metadata"]["uid"]
    assert claim["metadata"]["ownerReferences"][0]["uid"] == batch["metadata"]["uid"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert pod["metadata"]["labels"]["agentfleet.dev/agent-type"] == "Development"
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {
        "cpu": "1000m",
        "memory": "512Mi",
    }
    assert not batch["metadata"].get("finalizers"), "no cleanup needs a finalizer"
    assert not task["metadata"].get("finalizers")

    await cluster.delete("TicketBatch", "b1")
    await cluster.until(lambda: not cluster.pods(), what="the Pod to be collected")
    assert cluster.get("persistentvolumeclaims", "b1-workspace") is None
    assert cluster.get("AgentTask", "b1-api") is None


async def test_a_batch_workspace_can_be_retained_with_its_own_size_and_class(
    cluster: Cluster, operator: RunningOperator
) -> None:
    workspace = {"size": "2Gi", "storageClassName": "fast", "accessMode": "ReadWriteMany"}
    await cluster.apply(
        *m.base(), m.batch("b1", [m.ticket("api")], workspace={**workspace, "retain": True})
    )
    await cluster.until_pods("b1-api-develop-1")
    claim = cluster.get("persistentvolumeclaims", "b1-workspace")
    assert claim["spec"]["storageClassName"] == "fast"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert "ownerReferences" not in claim["metadata"]
    await cluster.delete("TicketBatch", "b1")
    await cluster.until(lambda: not cluster.pods(), what="the Pod to be collected")
    assert cluster.get("persistentvolumeclaims", "b1-workspace") is not None


async def test_parallel_limit_caps_the_pods_running_at_once(
    cluster: Cluster, operator: RunningOperator
) -> None:
    tickets = [m.ticket(f"t{i}") for i in range(5)]
    await cluster.apply(*m.base(), m.batch("b1", tickets, parallel_limit=2))
    await cluster.until(lambda: len(cluster.pods()) == 2, what="two Pods")
    await cluster.settle(0.5)
    assert len(cluster.pods()) == 2
    finished: set[str] = set()
    while cluster.phase("TicketBatch", "b1") != "Succeeded":
        live = sorted(cluster.pod_names() - finished)
        assert 1 <= len(live) <= 2, live
        await cluster.succeed(live[0])
        finished.add(live[0])
        await cluster.until_attempt(live[0], "Succeeded")
        await cluster.settle(0.2)
    await cluster.until_phase("TicketBatch", "b1", "Succeeded")
    assert len(finished) == 10


async def test_an_agents_max_parallel_tasks_caps_its_pods_below_the_batch_limit(
    cluster: Cluster, operator: RunningOperator
) -> None:
    docs = [
        m.project(),
        m.agent("dev", "Development", max_parallel=1),
        m.agent("qa", "QualityAssurance"),
        m.workflow(),
    ]
    await cluster.apply(*docs, m.batch("b1", [m.ticket("a"), m.ticket("b")], parallel_limit=5))
    await cluster.until(lambda: len(cluster.pods()) == 1, what="one Pod")
    await cluster.settle(0.5)
    assert len(cluster.pods()) == 1


async def test_an_invalid_batch_fails_with_a_condition_naming_the_field(
    cluster: Cluster, operator: RunningOperator
) -> None:
    cyclic = m.batch("b1", [m.ticket("a", "b"), m.ticket("b", "a")])
    await cluster.apply(*m.base(), cyclic)
    await cluster.until_phase("TicketBatch", "b1", "Failed")
    condition = cluster.status("TicketBatch", "b1")["conditions"][0]
    assert condition["reason"] == "InvalidSpec"
    assert "spec.tickets" in condition["message"]
    assert "cycle" in condition["message"]
    await cluster.until_events("InvalidSpec")
    assert [e["reason"] for e in cluster.events()] == ["InvalidSpec"]
    assert not cluster.objects("AgentTask")
    assert not cluster.pods()


async def test_a_batch_of_a_missing_project_waits_and_says_so_then_runs_when_it_appears(
    cluster: Cluster, operator: RunningOperator
) -> None:
    await cluster.apply(*m.base()[1:], m.batch("b1", [m.ticket("a")]))
    await cluster.until(
        lambda: "shop" in str(cluster.status("TicketBatch", "b1").get("conditions")),
        what="a condition naming the missing project",
    )
    assert not cluster.pods()
    await cluster.apply(m.project())
    await cluster.until_pods("b1-a-develop-1")


async def test_the_schema_rejects_a_batch_at_apply_with_the_field_named(
    cluster: Cluster, operator: RunningOperator
) -> None:
    bad = m.batch("b1", [m.ticket("a")], parallel_limit=0)
    with pytest.raises(Exception, match="parallelLimit"):
        await cluster.apply(bad)
    assert cluster.get("TicketBatch", "b1") is None
    assert NAMESPACE


async def test_watching_every_namespace_runs_each_namespaces_batch_with_its_own_config(
    cluster: Cluster,
) -> None:
    cluster.add_namespace("team-b")
    settings = OperatorSettings(liveness="", metrics_port=0, resync_seconds=0.5)
    running = await cluster.start_operator(settings)
    try:
        await cluster.apply(*m.base(), m.batch("b1", [m.ticket("x")]))
        await cluster.apply(*m.base(), m.batch("b1", [m.ticket("y")]), namespace="team-b")

        def pods_in(namespace: str) -> set[str]:
            return {p["metadata"]["name"] for p in cluster.emu.list_objects("pods", namespace)}

        await cluster.until(lambda: pods_in("team-b") == {"b1-y-develop-1"}, what="team-b's Pod")
        await cluster.until(lambda: pods_in(NAMESPACE) == {"b1-x-develop-1"}, what="team-a's Pod")
        task = cluster.emu.get_object("agenttasks", "team-b", "b1-y")
        batch = cluster.emu.get_object("ticketbatches", "team-b", "b1")
        assert task["metadata"]["ownerReferences"][0]["uid"] == batch["metadata"]["uid"]
    finally:
        await asyncio.to_thread(running.stop)


async def test_a_stage_timeout_stops_the_runner_first_and_leaves_the_pod_deadline_as_backstop(
    cluster: Cluster, operator: RunningOperator
) -> None:
    await cluster.apply(*m.base(timeout_minutes=10), m.batch("b1", [m.ticket("x")]))
    await cluster.until_pods("b1-x-develop-1")
    pod = cluster.get("pods", "b1-x-develop-1")
    spec = json.loads(pod["metadata"]["annotations"]["agentfleet.dev/run-spec"])
    assert spec["timeoutSeconds"] == 570
    assert pod["spec"]["activeDeadlineSeconds"] == 600 + 30 + 300


async def test_a_namespace_pattern_serves_what_it_matches_and_not_what_it_excludes(
    cluster: Cluster,
) -> None:
    cluster.add_namespace("team-x")
    await cluster.apply(*m.base(), m.batch("b1", [m.ticket("x")]), namespace="team-x")
    settings = OperatorSettings(
        namespaces=("team-*,!team-x",), liveness="", metrics_port=0, resync_seconds=0.5
    )
    running = await cluster.start_operator(settings)
    try:
        await cluster.apply(*m.base(), m.batch("b1", [m.ticket("y")]))
        await cluster.until_pods("b1-y-develop-1")
        await cluster.settle(0.5)
        assert cluster.emu.list_objects("pods", "team-x") == []
        assert cluster.emu.get_object("ticketbatches", "team-x", "b1").get("status") is None
    finally:
        await asyncio.to_thread(running.stop)
