"""The manifests the README tells a cluster user to apply start the quickstart batch as Pods."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.operator.harness import Cluster, RunningOperator, manifests

pytestmark = pytest.mark.asyncio

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FILES = [
    EXAMPLES / "quickstart" / "agents.yaml",
    EXAMPLES / "quickstart" / "workflow.yaml",
    EXAMPLES / "kubernetes" / "project.yaml",
    EXAMPLES / "quickstart" / "batch.yaml",
]


async def test_the_kubernetes_example_applies_and_starts_pods_that_clone_the_project_url(
    cluster: Cluster, operator: RunningOperator
) -> None:
    docs = [doc for path in FILES for doc in manifests(path.read_text(encoding="utf-8"))]
    await cluster.apply(*docs)
    batch = next(d for d in docs if d["kind"] == "TicketBatch")
    developers = [d for d in docs if d["kind"] == "AgentConfig" and "develop" in str(d["spec"])]
    cap = min(batch["spec"]["parallelLimit"], developers[0]["spec"]["maxParallelTasks"])
    await cluster.until(lambda: len(cluster.pods()) == cap, what=f"{cap} Pods")
    project = next(d for d in docs if d["kind"] == "Project")
    for pod in cluster.pods():
        prepare = pod["spec"]["initContainers"][0]
        env = {e["name"]: e.get("value") for e in prepare["env"]}
        assert env["AGENTFLEET_REPOSITORY_URL"] == project["spec"]["repository"]["url"]
        runner = pod["spec"]["containers"][0]
        assert runner["resources"]["limits"]["memory"] == "512Mi"
    assert cluster.phase("TicketBatch", batch["metadata"]["name"]) == "Processing"
