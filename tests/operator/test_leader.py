"""Leader election by Lease: one replica writes, another takes over when it goes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from agentfleet.operator.client import KubeApi
from agentfleet.operator.leader import LeaseElector
from agentfleet.operator.settings import OperatorSettings
from tests.operator import manifests as m
from tests.operator.harness import NAMESPACE, Cluster, client_configuration

pytestmark = pytest.mark.asyncio


@pytest.fixture
def api(cluster: Cluster) -> Iterator[KubeApi]:
    client = KubeApi(client_configuration(cluster.emu), qps=0)
    yield client
    client.close()


async def acquire(elector: LeaseElector) -> bool:
    return await asyncio.to_thread(elector.try_acquire_or_renew)


async def test_one_replica_holds_the_lease_and_renews_it_while_the_other_waits(
    cluster: Cluster, api: KubeApi
) -> None:
    first = LeaseElector(api, NAMESPACE, "agentfleet", holder="a")
    second = LeaseElector(api, NAMESPACE, "agentfleet", holder="b")
    assert await acquire(first)
    assert not await acquire(second)
    assert await acquire(first), "the holder renews"
    lease = cluster.emu.get_object("leases", NAMESPACE, "agentfleet")
    assert lease["spec"]["holderIdentity"] == "a"
    assert lease["spec"]["leaseDurationSeconds"] == 15


async def test_an_expired_lease_passes_to_another_replica_and_counts_the_transition(
    cluster: Cluster, api: KubeApi
) -> None:
    ticks = [1000.0]
    first = LeaseElector(api, NAMESPACE, "agentfleet", holder="a", monotonic=lambda: ticks[0])
    second = LeaseElector(api, NAMESPACE, "agentfleet", holder="b", monotonic=lambda: ticks[0])
    assert await acquire(first)
    assert not await acquire(second), "taken while fresh"
    ticks[0] += 10
    assert not await acquire(second), "taken before it expired"
    ticks[0] += 6
    assert await acquire(second)
    assert not await acquire(first), "the old holder must not take it back"
    lease = cluster.emu.get_object("leases", NAMESPACE, "agentfleet")
    assert lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseTransitions"] == 1


async def test_a_clock_far_ahead_does_not_make_a_fresh_lease_look_expired(
    cluster: Cluster, api: KubeApi
) -> None:
    ahead = datetime.now(UTC) + timedelta(minutes=10)
    first = LeaseElector(api, NAMESPACE, "agentfleet", holder="a")
    second = LeaseElector(api, NAMESPACE, "agentfleet", holder="b", clock=lambda: ahead)
    assert await acquire(first)
    assert not await acquire(second)


async def test_a_holder_whose_renewals_stall_stops_acting_before_the_lease_can_pass(
    cluster: Cluster, api: KubeApi
) -> None:
    ticks = [1000.0]
    elector = LeaseElector(api, NAMESPACE, "agentfleet", holder="a", monotonic=lambda: ticks[0])
    elector._renewed_at = ticks[0]
    elector.leading.set()
    assert elector.is_leading()
    ticks[0] += elector.renew_deadline_seconds + 0.1
    assert not elector.is_leading(), "acts on a Lease it may have lost"
    assert elector.renew_deadline_seconds < elector.lease_seconds


async def test_a_replica_that_stops_hands_the_lease_over_at_once(
    cluster: Cluster, api: KubeApi
) -> None:
    first = LeaseElector(api, NAMESPACE, "agentfleet", holder="a", renew_seconds=0.1)
    thread = threading.Thread(target=first.run, daemon=True)
    thread.start()
    await asyncio.to_thread(first.leading.wait, 5)
    first.stop()
    await asyncio.to_thread(thread.join, 5)
    assert not first.leading.is_set()
    second = LeaseElector(api, NAMESPACE, "agentfleet", holder="b")
    assert await acquire(second)


async def test_only_the_leader_starts_pods_and_the_standby_finishes_the_batch(
    cluster: Cluster,
) -> None:
    settings = OperatorSettings(
        namespaces=(NAMESPACE,),
        liveness="",
        metrics_port=0,
        resync_seconds=0.5,
        leader_election="agentfleet",
        leader_election_namespace=NAMESPACE,
    )
    leader = await cluster.start_operator(settings)
    await asyncio.to_thread(leader.operator.reconciler.leader.leading.wait, 10)
    standby = await cluster.start_operator(settings)
    try:
        await cluster.apply(*m.base(), m.batch("b1", [m.ticket("x"), m.ticket("y", "x")]))
        await cluster.until_pods("b1-x-develop-1")
        assert not standby.operator.reconciler.leader.leading.is_set()
        assert standby.operator.api.calls < 10, "the standby wrote"
        await asyncio.to_thread(leader.stop)
        await cluster.succeed("b1-x-develop-1")
        await cluster.until_pods("b1-x-qa-1", timeout=20)
        assert standby.operator.reconciler.leader.leading.is_set()
        await cluster.succeed("b1-x-qa-1")
        await cluster.until_pods("b1-y-develop-1")
    finally:
        await asyncio.to_thread(standby.stop)
    assert cluster.pod_names() == {"b1-x-develop-1", "b1-x-qa-1", "b1-y-develop-1"}
