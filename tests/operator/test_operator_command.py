"""`agentfleet operator` as a user starts it: a process, a kubeconfig, and a signal to stop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.operator import manifests as m
from tests.operator.harness import NAMESPACE, Cluster

pytestmark = pytest.mark.asyncio


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: emulator
  cluster: {{server: "{server}"}}
users:
- name: tester
  user: {{token: "not-checked"}}
contexts:
- name: emulator
  context: {{cluster: emulator, user: tester, namespace: {NAMESPACE}}}
current-context: emulator
"""
    )
    return path


def healthz(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
        return int(response.status)


async def test_the_operator_command_runs_a_batch_and_stops_cleanly_on_sigterm(
    cluster: Cluster, tmp_path: Path
) -> None:
    config = kubeconfig(tmp_path / "kubeconfig", str(cluster.emu.url).rstrip("/"))
    liveness, metrics = free_port(), free_port()
    env = {**os.environ, "KUBECONFIG": str(config)}
    command = [
        sys.executable,
        "-m",
        "agentfleet",
        "operator",
        "--namespace",
        NAMESPACE,
        "--liveness",
        f"http://127.0.0.1:{liveness}/healthz",
        "--metrics-port",
        str(metrics),
        "--qps",
        "20",
        "--workspace-size",
        "3Gi",
    ]
    log = (tmp_path / "operator.log").open("w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        await cluster.until(lambda: cluster.emu.watch_requests.get("pods"), what="kopf's watches")
        await cluster.apply(*m.base(), m.batch("b1", [m.ticket("x")]))
        await cluster.until_pods("b1-x-develop-1")
        claim = cluster.get("persistentvolumeclaims", "b1-workspace")
        assert claim["spec"]["resources"]["requests"]["storage"] == "3Gi"
        assert await asyncio.to_thread(healthz, liveness) == 200
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    output = (tmp_path / "operator.log").read_text()
    assert code == 0, output


async def test_the_operator_command_refuses_a_bad_flag_value_with_exit_2(tmp_path: Path) -> None:
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "agentfleet", "operator", "--workspace-access-mode", "Sometimes"],
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": str(tmp_path / "none")},
    )
    assert done.returncode == 2
    assert "--workspace-access-mode 'Sometimes'" in done.stderr
