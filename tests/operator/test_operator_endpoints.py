"""The operator serves kopf's liveness probe and Prometheus /metrics, as the chart expects."""

from __future__ import annotations

import asyncio
import socket
import threading
import urllib.error
import urllib.request

import pytest

from agentfleet.operator.settings import OperatorSettings
from tests.operator import manifests as m
from tests.operator.harness import NAMESPACE, Cluster

pytestmark = pytest.mark.asyncio


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


async def test_liveness_and_metrics_are_served_and_count_what_the_operator_did(
    cluster: Cluster,
) -> None:
    liveness, metrics = free_port(), free_port()
    settings = OperatorSettings(
        namespaces=(NAMESPACE,),
        liveness=f"http://127.0.0.1:{liveness}/healthz",
        metrics_port=metrics,
        resync_seconds=0.5,
    )
    running = await cluster.start_operator(settings, serve_metrics=True)
    try:
        await cluster.apply(*m.base(), m.batch("b1", [m.ticket("x")]))
        await cluster.until_pods("b1-x-develop-1")
        await cluster.succeed("b1-x-develop-1")
        await cluster.until_attempt("b1-x-develop-1", "Succeeded")
        code, _ = await asyncio.to_thread(fetch, f"http://127.0.0.1:{liveness}/healthz")
        assert code == 200
        code, text = await asyncio.to_thread(fetch, f"http://127.0.0.1:{metrics}/metrics")
        assert code == 200
    finally:
        await asyncio.to_thread(running.stop)
    assert 'agentfleet_runs_started_total{agent_type="Development"}' in text
    assert 'agentfleet_runs_finished_total{agent_type="Development",outcome="Succeeded"}' in text
    assert "agentfleet_reconcile_duration_seconds_count" in text
    assert 'agentfleet_kubernetes_requests_total{code="201",verb="post"}' in text
    assert 'agentfleet_tasks{phase="Running"}' in text
    with pytest.raises(OSError, match="refused"):
        await asyncio.to_thread(fetch, f"http://127.0.0.1:{metrics}/metrics")


async def test_liveness_fails_when_the_reconciler_stops_coming_round(cluster: Cluster) -> None:
    liveness = free_port()
    settings = OperatorSettings(
        namespaces=(NAMESPACE,), liveness=f"http://127.0.0.1:{liveness}/healthz", metrics_port=0
    )
    running = await cluster.start_operator(settings)
    try:
        reconciler = running.operator.reconciler
        reconciler.stop()  # as if stuck: its loop no longer comes round
        [loop] = [t for t in threading.enumerate() if t.name == "agentfleet-reconciler"]
        await asyncio.to_thread(loop.join, 5)
        reconciler.heartbeat -= 3600
        with pytest.raises(urllib.error.HTTPError, match="500"):
            await asyncio.to_thread(fetch, f"http://127.0.0.1:{liveness}/healthz")
    finally:
        await asyncio.to_thread(running.stop)
