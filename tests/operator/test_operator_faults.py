"""A flaky API server: failed writes are retried in an order that loses no request."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from agentfleet.operator.client import ApiError
from agentfleet.operator.main import Operator
from tests.operator import manifests as m
from tests.operator.harness import Cluster, Faults
from tests.support import kubelet

pytestmark = pytest.mark.asyncio

TIMEOUT = ApiError(500, "InternalError", "etcdserver: request timed out")


async def test_a_skip_is_not_lost_when_the_status_write_recording_it_fails(
    cluster: Cluster,
) -> None:
    faults = Faults()
    running = await cluster.start_operator(prepare=faults.prepare)
    try:
        await cluster.apply(*m.base("AbortAll"), m.batch("b1", [m.ticket("x"), m.ticket("y")]))
        await cluster.until_pods("b1-x-develop-1", "b1-y-develop-1")
        await cluster.set_pod_status("b1-x-develop-1", kubelet.running)
        await cluster.until_attempt("b1-x-develop-1", "Running")
        faults.arm("PATCH", "/agenttasks/b1-x/status", TIMEOUT)
        await cluster.annotate("AgentTask", "b1-x", "agentfleet.dev/action", "skip")
        await cluster.until(lambda: faults.pending() == 0, what="the injected failure")
        await cluster.until(
            lambda: cluster.get("pods", "b1-x-develop-1")["spec"].get("activeDeadlineSeconds") == 1,
            what="the skipped run's Pod to be stopped",
        )
        await cluster.set_pod_status("b1-x-develop-1", kubelet.deadline_exceeded)
        await cluster.until_phase("AgentTask", "b1-x", "Skipped")
        await cluster.settle(0.5)
        assert cluster.phase("AgentTask", "b1-y") == "Running", "a skip became a failure"
    finally:
        await asyncio.to_thread(running.stop)


async def test_a_retry_is_not_lost_when_the_status_write_recording_it_fails(
    cluster: Cluster,
) -> None:
    faults = Faults()
    running = await cluster.start_operator(prepare=faults.prepare)
    try:
        await cluster.apply(*m.base("ContinueOthers"), m.batch("b1", [m.ticket("x")]))
        await cluster.until_pods("b1-x-develop-1")
        await cluster.fail("b1-x-develop-1")
        await cluster.until_phase("AgentTask", "b1-x", "Failed")
        faults.arm("PATCH", "/agenttasks/b1-x/status", TIMEOUT)
        await cluster.annotate("AgentTask", "b1-x", "agentfleet.dev/action", "retry")
        await cluster.until_pods("b1-x-develop-2")
        assert faults.pending() == 0
    finally:
        await asyncio.to_thread(running.stop)


async def test_a_batch_never_reads_finished_while_a_tasks_last_status_write_failed(
    cluster: Cluster,
) -> None:
    faults = Faults()
    running = await cluster.start_operator(prepare=faults.prepare)
    try:
        await cluster.apply(*m.base(), m.batch("b1", [m.ticket("x")]))
        await cluster.until_pods("b1-x-develop-1")
        await cluster.until_attempt("b1-x-develop-1", "Running")
        faults.arm("PATCH", "/agenttasks/b1-x/status", TIMEOUT)
        await cluster.fail("b1-x-develop-1")
        await cluster.until_phase("TicketBatch", "b1", "Failed")
        assert cluster.phase("AgentTask", "b1-x") == "Failed"
    finally:
        await asyncio.to_thread(running.stop)


async def test_a_full_resource_quota_makes_runs_wait_instead_of_failing(
    cluster: Cluster,
) -> None:
    faults = Faults()
    running = await cluster.start_operator(prepare=faults.prepare)
    try:
        quota = ApiError(
            403,
            "Forbidden",
            'pods "b1-y-develop-1" is forbidden: exceeded quota: compute, requested: '
            "limits.memory=512Mi, used: limits.memory=512Mi, limited: limits.memory=1Gi",
        )
        faults.arm("POST", "/pods", quota, times=3)
        await cluster.apply(*m.base("AbortAll"), m.batch("b1", [m.ticket("x")]))
        await cluster.until_pods("b1-x-develop-1", timeout=20)
        assert cluster.phase("TicketBatch", "b1") == "Processing"
        assert cluster.attempt("b1-x-develop-1")["phase"] == "Running"
    finally:
        await asyncio.to_thread(running.stop)


def slow_batch_list(operator: Operator) -> None:
    """The answer to the first list of batches arrives late (a slow API server)."""
    real = operator.api.list

    def listing(kind: str, *args: Any, **kwargs: Any) -> Any:
        answer = real(kind, *args, **kwargs)
        if kind == "TicketBatch":
            time.sleep(1.0)
        return answer

    operator.api.list = listing  # type: ignore[method-assign]


async def test_a_batch_created_while_the_first_list_is_in_flight_is_not_forgotten(
    cluster: Cluster,
) -> None:
    running = await cluster.start_operator(prepare=slow_batch_list)
    try:
        await cluster.apply(*m.base())
        await cluster.settle(0.3)
        await cluster.apply(m.batch("b1", [m.ticket("x")]))
        await cluster.until_pods("b1-x-develop-1", timeout=10)
    finally:
        await asyncio.to_thread(running.stop)
