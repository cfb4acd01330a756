"""`kubectl get agentfleet` against a running operator: the columns say what a person asks."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.operator import manifests as m
from tests.operator.harness import NAMESPACE, Cluster, RunningOperator

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]


async def kubectl(cluster: Cluster, tmp_path: Path, *args: str) -> str:
    server = str(cluster.emu.url).rstrip("/")
    config = tmp_path / "kubeconfig"
    if not config.exists():
        config.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    command = [
        "kubectl",
        f"--server={server}",
        f"--cache-dir={tmp_path / 'kube-cache'}",
        f"--kubeconfig={config}",
        "-n",
        NAMESPACE,
        *args,
    ]
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_kubectl_get_agentfleet_shows_phase_progress_and_active_runs_of_every_kind(
    cluster: Cluster, operator: RunningOperator, tmp_path: Path
) -> None:
    await cluster.apply(*m.base(), m.batch("b1", [m.ticket("api"), m.ticket("ui", "api")]))
    await cluster.until_pods("b1-api-develop-1")
    await cluster.succeed("b1-api-develop-1")
    await cluster.until_pods("b1-api-qa-1")
    out = await kubectl(cluster, tmp_path, "get", "agentfleet")
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if "/" in line}
    assert rows["project.agentfleet.dev/shop"][:2] == ["https://git.example.com/shop.git", "Ready"]
    assert rows["agentconfig.agentfleet.dev/dev"][:4] == ["Development", "command", "0", "Ready"]
    assert rows["agentconfig.agentfleet.dev/qa"][:4] == [
        "QualityAssurance",
        "command",
        "1",
        "Ready",
    ]
    assert rows["workflow.agentfleet.dev/develop-then-qa"][:2] == ["ContinueOthers", "Ready"]
    assert rows["ticketbatch.agentfleet.dev/b1"][:3] == ["DependencyAware", "Processing", "0/2"]
    assert rows["agenttask.agentfleet.dev/b1-api"][:3] == ["b1", "Running", "1/2"]
    assert rows["agenttask.agentfleet.dev/b1-ui"][:3] == ["b1", "Pending", "0/2"]
    wide = await kubectl(cluster, tmp_path, "get", "agenttasks", "-o", "wide")
    header = wide.splitlines()[0].split()
    assert header == ["NAME", "BATCH", "PHASE", "PROGRESS", "REASON", "AGE"]
