"""A batch deleted and applied again under its name starts afresh: nothing of the old one."""

from __future__ import annotations

import asyncio

import pytest

from tests.operator import manifests as m
from tests.operator.harness import NAMESPACE, Cluster, RunningOperator
from tests.support.emulator import FilledEmulator

pytestmark = pytest.mark.asyncio


def claim(cluster: Cluster) -> dict | None:  # type: ignore[type-arg]
    return cluster.emu.get_object("persistentvolumeclaims", NAMESPACE, "b1-workspace")


async def test_a_batch_reapplied_before_garbage_collection_does_not_inherit_old_tasks(
    cluster: Cluster, operator: RunningOperator, monkeypatch: pytest.MonkeyPatch
) -> None:
    await cluster.apply(*m.base(), m.batch("b1", [m.ticket("x")]))
    await cluster.until_pods("b1-x-develop-1")
    await cluster.succeed("b1-x-develop-1")
    await cluster.until_pods("b1-x-qa-1")
    await cluster.succeed("b1-x-qa-1")
    await cluster.until_phase("TicketBatch", "b1", "Succeeded")
    old_task = cluster.get("AgentTask", "b1-x")["metadata"]["uid"]

    # On a cluster the garbage collector works later: hold it back, as it would be.
    collect = FilledEmulator._collect_garbage
    monkeypatch.setattr(
        FilledEmulator, "_collect_garbage", lambda self: setattr(self, "_gc_pending", False)
    )
    await cluster.delete("TicketBatch", "b1")
    await cluster.apply(m.batch("b1", [m.ticket("x")]))
    await cluster.until(lambda: cluster.phase("TicketBatch", "b1"), what="the new batch's status")
    await cluster.settle(0.5)
    assert cluster.phase("TicketBatch", "b1") != "Succeeded", "took the old batch's results"

    monkeypatch.setattr(FilledEmulator, "_collect_garbage", collect)
    collect(cluster.emu)
    await cluster.until(
        lambda: (
            (cluster.get("pods", "b1-x-develop-1") or {})
            .get("metadata", {})
            .get("ownerReferences", [{}])[0]
            .get("uid")
            not in (None, old_task)
        ),
        what="a Pod of the new task",
    )
    new_batch = cluster.get("TicketBatch", "b1")["metadata"]["uid"]
    assert cluster.get("AgentTask", "b1-x")["metadata"]["ownerReferences"][0]["uid"] == new_batch
    await cluster.until(lambda: claim(cluster) is not None, what="the new batch's claim")
    assert claim(cluster)["metadata"]["ownerReferences"][0]["uid"] == new_batch


async def test_a_batch_reapplied_after_a_refused_run_tries_it_again(
    cluster: Cluster, operator: RunningOperator
) -> None:
    broken = m.agent("dev", "Development")
    broken["spec"]["baseExecutor"]["env"] = {"HOME": "/root"}  # reserved: the Pod is refused
    docs = [d for d in m.base() if d["metadata"]["name"] != "dev"]
    await cluster.apply(*docs, broken, m.batch("b1", [m.ticket("x")]))
    await cluster.until_phase("AgentTask", "b1-x", "Failed")
    assert cluster.attempt("b1-x-develop-1")["reason"] == "InvalidRun"
    await asyncio.to_thread(
        cluster.custom.patch_namespaced_custom_object,
        "agentfleet.dev",
        "v1alpha1",
        NAMESPACE,
        "agentconfigs",
        "dev",
        {"spec": {"baseExecutor": {"env": None}}},
        _content_type="application/merge-patch+json",
    )
    await cluster.delete("TicketBatch", "b1")
    await cluster.until(lambda: not cluster.objects("AgentTask"), what="the old task to go")
    await cluster.apply(m.batch("b1", [m.ticket("x")]))
    await cluster.until_pods("b1-x-develop-1")
    assert claim(cluster) is not None


async def test_a_running_batch_keeps_its_claim_when_retention_is_switched_on(
    cluster: Cluster,
) -> None:
    from agentfleet.operator.settings import OperatorSettings

    first = await cluster.start_operator()
    await cluster.apply(*m.base(), m.batch("b1", [m.ticket("x")]))
    await cluster.until_pods("b1-x-develop-1")
    await asyncio.to_thread(first.stop)
    retaining = OperatorSettings(
        namespaces=(NAMESPACE,),
        liveness="",
        metrics_port=0,
        resync_seconds=0.5,
        retain_workspaces=True,
    )
    second = await cluster.start_operator(retaining)
    try:
        await cluster.succeed("b1-x-develop-1")
        await cluster.until_pods("b1-x-qa-1")
    finally:
        await asyncio.to_thread(second.stop)
