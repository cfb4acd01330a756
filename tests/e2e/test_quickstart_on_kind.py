"""The chart and the quickstart batch on a real kind cluster: what the emulator cannot show.

Images built from images/, `helm install` and `helm test`, then the quickstart's six tickets
run as real Pods (init container cloning from a git server in the cluster, the scripted
agents, the criteria, commits on the workspace volume), under the restricted Pod Security
Standard, and garbage collection when the batch is deleted. Needs Docker, helm, git and
pytest-kind; skipped otherwise, with the reason (conftest.py). The tests share one cluster and
run in file order: the last one deletes the batch.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from agentfleet.operator.metadata import APP_NAME_LABEL, BATCH_LABEL
from agentfleet.operator.pods import RUNNER_APP
from agentfleet.operator.workspace import workspace_claim_name

from .conftest import QUICKSTART, REPO, E2EError, Kube

pytestmark = pytest.mark.e2e

BATCH = "textkit"
BATCH_TIMEOUT = 15 * 60
GC_TIMEOUT = 3 * 60
POLL_SECONDS = 5
COMMIT_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")  # SHA-1, or SHA-256 repositories
METRICS_PORT = 9090
FINISHED = {"Succeeded", "Failed"}  # a retried attempt's Pod may have failed; it still ran


def project(url: str) -> dict[str, Any]:
    """examples/kubernetes/project.yaml, cloning from `url` instead of its placeholder."""
    path = REPO / "examples" / "kubernetes" / "project.yaml"
    manifest: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    manifest["spec"]["repository"]["url"] = url
    return manifest


def wait_for_batch(kube: Kube, name: str, timeout: float) -> dict[str, Any]:
    """The batch once Succeeded; a failure with the diagnostics when Failed or out of time."""
    deadline = time.monotonic() + timeout
    last: str = "never read"
    while True:
        try:
            batch = kube.get("ticketbatch", name)
        except E2EError as exc:  # the API server may hiccup; the deadline still holds
            last = str(exc)
        else:
            status = batch.get("status") or {}
            last = f"phase {status.get('phase')}, progress {status.get('progress')}"
            if status.get("phase") == "Succeeded":
                return batch
            if status.get("phase") == "Failed":
                kube.fail(f"TicketBatch {name} Failed: {status}")
        if time.monotonic() > deadline:
            kube.fail(f"TicketBatch {name} not Succeeded within {timeout:.0f} s: {last}")
        time.sleep(POLL_SECONDS)


@pytest.fixture(scope="module")
def finished_batch(kube: Kube, release: str, git_url: str) -> dict[str, Any]:
    """The quickstart's manifests applied, with the Project on the in-cluster git server."""
    # A cluster kept from an earlier run (--keep-cluster) may still hold the batch.
    kube.kubectl(
        "delete", "ticketbatch", BATCH, "--ignore-not-found", "--timeout=120s", timeout=150
    )
    kube.apply_file(QUICKSTART / "agents.yaml")
    kube.apply_file(QUICKSTART / "workflow.yaml")
    kube.apply(project(git_url))
    kube.apply_file(QUICKSTART / "batch.yaml")
    return wait_for_batch(kube, BATCH, BATCH_TIMEOUT)


@pytest.fixture(scope="module")
def tasks(kube: Kube, finished_batch: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        task
        for task in kube.items("agenttasks")
        if (task["spec"].get("batchRef") or {}).get("name") == BATCH
    ]


def run_pods(kube: Kube) -> list[dict[str, Any]]:
    return kube.items("pods", f"--selector={APP_NAME_LABEL}={RUNNER_APP},{BATCH_LABEL}={BATCH}")


def test_helm_test_passes(kube: Kube, release: str) -> None:
    try:
        kube.helm("test", release, "--timeout=5m")
    except E2EError as exc:
        kube.fail(str(exc))


def test_quickstart_batch_succeeds(finished_batch: dict[str, Any]) -> None:
    counts = finished_batch["status"]["counts"]
    tickets = len(finished_batch["spec"]["tickets"])
    assert counts["total"] == tickets
    assert counts["succeeded"] == tickets


def test_every_task_succeeded_with_a_commit(
    finished_batch: dict[str, Any], tasks: list[dict[str, Any]]
) -> None:
    assert len(tasks) == len(finished_batch["spec"]["tickets"])
    problems = []
    for task in tasks:
        name, status = task["metadata"]["name"], task.get("status") or {}
        if status.get("phase") != "Succeeded":
            problems.append(f"{name}: phase {status.get('phase')}")
        if not status.get("stages"):
            problems.append(f"{name}: no stages in its status")
        for stage in status.get("stages", []):
            attempts = stage.get("attempts") or [{}]
            last = attempts[-1]
            if stage.get("phase") != "Succeeded" or last.get("phase") != "Succeeded":
                problems.append(f"{name}/{stage['name']}: {stage.get('phase')}, last {last}")
            if not COMMIT_SHA.fullmatch(last.get("commit") or ""):
                problems.append(f"{name}/{stage['name']}: no commit sha in {last}")
    assert not problems, "\n".join(problems)


def _effective(pod: dict[str, Any], container: dict[str, Any], key: str) -> Any:
    """A securityContext field as the kubelet applies it: the container's, else the Pod's."""
    value = (container.get("securityContext") or {}).get(key)
    return value if value is not None else (pod["spec"].get("securityContext") or {}).get(key)


def test_every_pod_ran_as_non_root(
    kube: Kube, finished_batch: dict[str, Any], tasks: list[dict[str, Any]]
) -> None:
    """Every Pod of the namespace: the runs, the operator and the git server.

    The namespace also enforces the restricted Pod Security Standard, so a Pod that breaks it
    would not have been admitted at all, and the batch would not have succeeded.
    """
    runs = {pod["metadata"]["name"]: pod for pod in run_pods(kube)}
    attempts = {
        attempt["runName"]
        for task in tasks
        for stage in task["status"]["stages"]
        for attempt in stage["attempts"]
    }
    assert attempts, "no attempt recorded"
    assert attempts <= set(runs), f"attempts without a Pod: {sorted(attempts - set(runs))}"
    phases = {name: pod["status"].get("phase") for name, pod in runs.items()}
    unfinished = {name: phase for name, phase in phases.items() if phase not in FINISHED}
    assert not unfinished, f"run Pods that did not run to the end: {unfinished}"
    problems = []
    for pod in kube.items("pods"):
        spec = pod["spec"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{pod['metadata']['name']}/{container['name']}"
            if _effective(pod, container, "runAsNonRoot") is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if _effective(pod, container, "runAsUser") == 0:
                problems.append(f"{where}: runAsUser 0")
    assert not problems, "\n".join(problems)


def test_workspace_claim_is_owned_by_the_batch(kube: Kube, finished_batch: dict[str, Any]) -> None:
    claim = kube.get("persistentvolumeclaim", workspace_claim_name(BATCH))
    owners = claim["metadata"].get("ownerReferences", [])
    batch_uid = finished_batch["metadata"]["uid"]
    assert any(
        owner["kind"] == "TicketBatch" and owner["name"] == BATCH and owner["uid"] == batch_uid
        for owner in owners
    ), owners
    assert claim["status"]["phase"] == "Bound"


@pytest.fixture
def metrics_port(cluster: Any, kube: Kube, release: str) -> Iterator[int]:
    """The operator's /metrics through `kubectl port-forward` to its Service."""
    with cluster.port_forward(
        f"service/{release}", METRICS_PORT, f"--namespace={kube.namespace}"
    ) as port:
        yield port


def test_operator_metrics_count_the_runs(
    finished_batch: dict[str, Any], tasks: list[dict[str, Any]], metrics_port: int
) -> None:
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    finished = sum(
        s.value
        for s in samples
        if s.name == "agentfleet_runs_finished_total" and s.labels.get("outcome") == "Succeeded"
    )
    stages = sum(len(task["status"]["stages"]) for task in tasks)
    assert finished >= stages  # a kept cluster's operator may have counted earlier runs too
    batches = {s.labels["phase"]: s.value for s in samples if s.name == "agentfleet_batches"}
    assert batches.get("Succeeded", 0) >= 1, batches


def test_deleting_the_batch_collects_its_pods_and_claim(
    kube: Kube, finished_batch: dict[str, Any]
) -> None:
    """Last in the file: the batch goes, and the API's garbage collector takes the rest."""
    kube.kubectl("delete", "ticketbatch", BATCH, "--wait=true", "--timeout=120s", timeout=150)
    selector = f"--selector={BATCH_LABEL}={BATCH}"
    deadline = time.monotonic() + GC_TIMEOUT
    while True:
        left = {
            "pods": [p["metadata"]["name"] for p in kube.items("pods", selector)],
            "claims": [c["metadata"]["name"] for c in kube.items("pvc", selector)],
            "tasks": [
                t["metadata"]["name"]
                for t in kube.items("agenttasks")
                if (t["spec"].get("batchRef") or {}).get("name") == BATCH
            ],
        }
        if not any(left.values()):
            return
        if time.monotonic() > deadline:
            kube.fail(f"still there {GC_TIMEOUT} s after the batch was deleted: {left}")
        time.sleep(POLL_SECONDS)
