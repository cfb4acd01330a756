"""The operator's cache never goes back in time, and knows a namesake from the original."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from agentfleet.models import API_VERSION
from agentfleet.operator.cache import ClusterCache
from agentfleet.operator.client import TokenBucket

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def workflow(rv: int, uid: str = "u1", stage: str = "develop", **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": {
            "name": "wf",
            "namespace": "ns",
            "uid": uid,
            "resourceVersion": str(rv),
            **meta,
        },
        "spec": {"stages": [{"name": stage, "agentType": "Development", "action": "implement"}]},
    }


def stage_of(cache: ClusterCache) -> str:
    entry = cache.get("Workflow", "ns", "wf")
    assert entry is not None
    assert entry.model is not None
    return entry.model.spec.stages[0].name


def test_an_older_resource_version_never_replaces_a_newer_one() -> None:
    cache = ClusterCache()
    assert cache.put("Workflow", workflow(5, stage="newer"))
    assert not cache.put("Workflow", workflow(4, stage="older"))
    assert not cache.put("Workflow", workflow(5, stage="same"))
    assert stage_of(cache) == "newer"
    assert cache.put("Workflow", workflow(6, stage="newest"))
    assert stage_of(cache) == "newest"


def test_a_recreated_namesake_replaces_the_deleted_object_whatever_its_version() -> None:
    cache = ClusterCache()
    cache.put("Workflow", workflow(9, uid="old"))
    assert cache.put("Workflow", workflow(3, uid="new", stage="again"))
    assert stage_of(cache) == "again"
    assert not cache.remove("Workflow", workflow(10, uid="old")), "the old one's deletion"
    assert cache.get("Workflow", "ns", "wf") is not None
    assert cache.remove("Workflow", workflow(4, uid="new"))
    assert cache.get("Workflow", "ns", "wf") is None


def test_concurrent_puts_keep_the_newest_whatever_the_interleaving() -> None:
    cache = ClusterCache()
    versions = list(range(1, 401))
    barrier = threading.Barrier(4)

    def put(rvs: list[int]) -> None:
        barrier.wait()
        for rv in rvs:
            cache.put("Workflow", workflow(rv, stage=f"s{rv}"))

    threads = [threading.Thread(target=put, args=(versions[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stage_of(cache) == "s400"


def test_an_invalid_object_is_held_with_the_reason_and_left_out_of_snapshots() -> None:
    cache = ClusterCache()
    bad = workflow(1)
    bad["spec"]["stages"] = []
    cache.put("Workflow", bad)
    entry = cache.get("Workflow", "ns", "wf")
    assert entry is not None
    assert entry.model is None
    assert "spec.stages" in (entry.error or "")
    assert cache.snapshot("ns", NOW).workflows == {}


def test_a_fresh_list_drops_what_was_deleted_while_no_one_watched() -> None:
    cache = ClusterCache()
    cache.put("Workflow", workflow(1))
    cache.replace_all("Workflow", "ns", [])
    assert cache.get("Workflow", "ns", "wf") is None


def test_the_token_bucket_lets_a_burst_through_then_paces_at_qps() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(qps=10, burst=3, clock=lambda: now[0], sleep=sleep)
    waits = [bucket.take() for _ in range(6)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert [round(w, 3) for w in waits[3:]] == [0.1, 0.1, 0.1]
    assert round(now[0], 3) == 0.3
    assert TokenBucket(qps=0, burst=0).take() == 0.0


def test_the_retry_backoff_grows_to_its_cap_and_never_overflows() -> None:
    from agentfleet.operator.reconciler import backoff

    assert [backoff(n, 30.0) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert backoff(7, 30.0) == 30.0
    assert backoff(5000, 30.0) == 30.0
