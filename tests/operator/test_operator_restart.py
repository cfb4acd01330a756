"""The operator killed at any point and started again: no duplicate Pod, no lost ticket."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from agentfleet.operator.client import KubeApi
from agentfleet.operator.main import Operator
from tests.operator import manifests as m
from tests.operator.harness import Cluster

pytestmark = pytest.mark.asyncio

TICKETS = [m.ticket("a"), m.ticket("b"), m.ticket("c", "a"), m.ticket("d")]


class KilledError(Exception):
    """The process died: nothing it would still send reaches the API."""


def crash_after(calls: int) -> Any:
    """Make the operator's client die after `calls` requests, like a process killed mid-round."""

    def prepare(operator: Operator) -> None:
        api: KubeApi = operator.api
        real = api.request
        lock = threading.Lock()
        made = [0]

        def request(*args: Any, **kwargs: Any) -> Any:
            with lock:
                if made[0] >= calls:
                    raise KilledError(f"killed after {calls} requests")
                made[0] += 1
            return real(*args, **kwargs)

        api.request = request  # type: ignore[method-assign]

    return prepare


async def run_to_the_end(cluster: Cluster) -> None:
    """Play the kubelet: every Pod succeeds, until the batch does."""
    done: set[str] = set()
    while cluster.phase("TicketBatch", "b1") != "Succeeded":
        live = sorted(cluster.pod_names() - done)
        if not live:
            await asyncio.sleep(0.05)
            continue
        for name in live:
            await cluster.succeed(name)
            done.add(name)
        await cluster.until(
            lambda: cluster.pod_names() - done or cluster.phase("TicketBatch", "b1") == "Succeeded",
            what="the next Pods",
        )


@pytest.mark.parametrize("calls", [1, 3, 5, 8, 12])
async def test_a_crash_after_any_request_then_a_restart_loses_and_duplicates_nothing(
    cluster: Cluster, calls: int
) -> None:
    await cluster.apply(*m.base(), m.batch("b1", TICKETS, parallel_limit=2))
    first = await cluster.start_operator(prepare=crash_after(calls))
    await cluster.settle(0.5)
    await asyncio.to_thread(first.stop)
    second = await cluster.start_operator()
    try:
        await run_to_the_end(cluster)
    finally:
        await asyncio.to_thread(second.stop)
    tasks = sorted(t["metadata"]["name"] for t in cluster.objects("AgentTask"))
    assert tasks == ["b1-a", "b1-b", "b1-c", "b1-d"]
    expected = {f"b1-{t}-{stage}-1" for t in "abcd" for stage in ("develop", "qa")}
    assert cluster.pod_names() == expected, "a Pod was made twice, or a stage was lost"
    # Events are best effort (a crash may take some along), but never say a thing twice.
    created = [e["message"] for e in cluster.events("TaskCreated")]
    assert sum(message.count("task b1-") for message in created) <= 4


async def test_pods_that_finished_while_the_operator_was_down_are_collected_on_restart(
    cluster: Cluster,
) -> None:
    await cluster.apply(*m.base(), m.batch("b1", TICKETS, parallel_limit=2))
    first = await cluster.start_operator()
    await cluster.until_pods("b1-a-develop-1", "b1-b-develop-1")
    await cluster.until_attempt("b1-b-develop-1", "Running")
    await asyncio.to_thread(first.stop)

    await cluster.succeed("b1-a-develop-1", commit="c" * 40)
    await cluster.fail("b1-b-develop-1", "CriteriaFailed", "1 test failed")
    await cluster.settle(0.3)
    assert cluster.attempt("b1-a-develop-1")["phase"] == "Running"

    second = await cluster.start_operator()
    try:
        attempt = await cluster.until_attempt("b1-a-develop-1", "Succeeded")
        assert attempt["commit"] == "c" * 40
        failed = await cluster.until_attempt("b1-b-develop-1", "Failed")
        assert failed["reason"] == "CriteriaFailed"
        await cluster.until_pods("b1-a-qa-1")
    finally:
        await asyncio.to_thread(second.stop)
    assert "b1-a-develop-2" not in cluster.pod_names()
