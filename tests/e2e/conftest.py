"""A kind cluster with agentfleet installed by its chart, for the end-to-end suite.

Everything here needs a Docker engine, helm, git and pytest-kind (the `e2e` extra). Where one
is missing, every test of this folder is skipped at collection, with a reason naming what is
missing, before any fixture runs: the default test run stays fast and offline. README.md says
how to run it.

The fixtures are module-scoped and build on each other: a kind cluster, the two images built
and loaded into it, a namespace that enforces the restricted Pod Security Standard, a git
server in it serving the quickstart's sample repository, and the chart installed there.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORK = REPO / "build" / "e2e"
"""pytest-kind's files (kubeconfig, downloaded kind and kubectl): git-ignored, like build/."""
QUICKSTART = REPO / "examples" / "quickstart"
CHART = REPO / "charts" / "agentfleet"

CLUSTER = "agentfleet-e2e"
NAMESPACE = "agentfleet-e2e"
RELEASE = "agentfleet"
"""Contains the chart's name, so the chart's objects (the Deployment first) are named just this."""
TAG = "e2e"
OPERATOR_REPOSITORY = "agentfleet-operator"
RUNNER_REPOSITORY = "agentfleet-runner"
OPERATOR_IMAGE = f"{OPERATOR_REPOSITORY}:{TAG}"
RUNNER_IMAGE = f"{RUNNER_REPOSITORY}:{TAG}"
GIT_SERVER = "git-server"
GIT_PORT = 9418
BUILD_TIMEOUT = 30 * 60
WAIT_SECONDS = 300
IMAGE_ID_ANNOTATION = "agentfleet.dev/e2e-image-id"


# --- skipping where the suite cannot run ------------------------------------------------------


@functools.cache
def missing_requirements() -> tuple[str, ...]:
    """What this machine lacks to run the suite; empty when it has everything."""
    missing = []
    if importlib.util.find_spec("pytest_kind") is None:
        missing.append("pytest-kind is not installed (pip install -e '.[dev,e2e]')")
    if shutil.which("docker") is None:
        missing.append("no `docker` on PATH")
    elif problem := _docker_engine_problem():
        missing.append(problem)
    if shutil.which("helm") is None:
        missing.append("no `helm` on PATH (Helm 3.8+ or 4)")
    if shutil.which("git") is None:
        missing.append("no `git` on PATH")
    return tuple(missing)


def _docker_engine_problem() -> str | None:
    """Why the Docker CLI cannot reach an engine, or None when it can."""
    try:
        done = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 20 s (no Docker engine?)"
    if done.returncode == 0 and done.stdout.strip():
        return None
    lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return f"`docker info` failed, no Docker engine: {lines[-1] if lines else done.returncode}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: needs a Docker engine; runs on a kind cluster (tests/e2e/README.md)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if HERE in item.path.parents]
    if not ours:
        return
    missing = missing_requirements()
    if not missing:
        return
    skip = pytest.mark.skip(
        reason="e2e needs Docker, helm, git and pytest-kind (tests/e2e/README.md): "
        + "; ".join(missing)
    )
    for item in ours:
        item.add_marker(skip)


# --- kubectl and helm on the cluster ----------------------------------------------------------


class E2EError(Exception):
    """A command against the cluster failed; the message has its stderr."""


@dataclass(frozen=True)
class Kube:
    """kubectl (through pytest-kind) and helm against the kind cluster, in one namespace."""

    cluster: Any  # pytest_kind.KindCluster
    namespace: str

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        try:
            output: str = self.cluster.kubectl(
                f"--namespace={self.namespace}",
                *args,
                input=stdin,
                stderr=subprocess.PIPE,
                timeout=timeout,
            )
        except subprocess.CalledProcessError as exc:
            raise E2EError(
                f"kubectl {' '.join(args)} exited {exc.returncode}: {(exc.stderr or '').strip()}"
            ) from None
        return output

    def get(self, *args: str) -> dict[str, Any]:
        """`kubectl get ARGS -o json`, parsed."""
        result: dict[str, Any] = json.loads(self.kubectl("get", *args, "--output=json"))
        return result

    def items(self, *args: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get(*args)["items"]
        return items

    def apply(self, *objects: dict[str, Any]) -> None:
        manifest = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
        self.kubectl("apply", "--filename=-", stdin=json.dumps(manifest))

    def apply_file(self, path: Path) -> None:
        self.kubectl("apply", f"--filename={path}")

    def wait_available(self, deployment: str, seconds: int = WAIT_SECONDS) -> None:
        """Wait for a Deployment's rollout and Available condition; fail with the diagnostics."""
        target = f"deployment/{deployment}"
        try:
            self.kubectl("rollout", "status", target, f"--timeout={seconds}s", timeout=seconds + 30)
            self.kubectl("wait", "--for=condition=Available", target, "--timeout=30s")
        except (E2EError, subprocess.TimeoutExpired) as exc:
            self.fail(f"{target} not Available within {seconds} s: {exc}")

    def helm(self, *args: str, timeout: float = 600) -> str:
        env = {**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig_path)}
        done = subprocess.run(
            ["helm", f"--namespace={self.namespace}", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise E2EError(f"helm {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    def fail(self, message: str) -> NoReturn:
        """Fail the test with `message` and what the namespace looks like now."""
        pytest.fail(f"{message}\n\n{self.diagnostics()}", pytrace=False)

    def diagnostics(self) -> str:
        """Objects, events, the operator's log and the logs of failing Pods, for a failure."""
        commands: list[tuple[str, ...]] = [
            ("get", "agentfleet,pods,pvc", "--output=wide"),
            ("get", "events", "--sort-by=.lastTimestamp"),
            ("logs", f"deployment/{RELEASE}", "--tail=300"),  # the operator
        ]
        try:
            pods = self.items("pods")
        except (E2EError, subprocess.TimeoutExpired):
            pods = []
        for pod in pods:
            name = pod["metadata"]["name"]
            for container in failing_containers(pod):
                commands.append(("logs", name, f"--container={container}", "--tail=200"))
        sections = []
        for args in commands:
            try:
                text = self.kubectl(*args, timeout=60)
            except (E2EError, subprocess.TimeoutExpired) as exc:
                text = f"({exc})"
            sections.append(f"----- kubectl {' '.join(args)}\n{text.rstrip()}")
        return "\n".join(sections)


def failing_containers(pod: dict[str, Any]) -> list[str]:
    """The containers with a log worth reading in a Pod that failed or is failing."""
    status = pod.get("status", {})
    statuses = status.get("initContainerStatuses", []) + status.get("containerStatuses", [])
    stuck = {"CrashLoopBackOff", "CreateContainerConfigError", "RunContainerError"}

    def failed(container: dict[str, Any]) -> bool:
        state = container.get("state", {})
        exit_code = state.get("terminated", {}).get("exitCode", 0)
        return exit_code != 0 or state.get("waiting", {}).get("reason") in stuck

    if status.get("phase") != "Failed" and not any(failed(c) for c in statuses):
        return []
    started = ("running", "terminated")
    return [
        c["name"]
        for c in statuses
        if any(key in c.get("state", {}) for key in started) or c.get("lastState", {})
    ]


# --- the cluster and what runs in it ----------------------------------------------------------


def _option_path(value: str | None) -> Path | None:
    return Path(value).resolve() if value else None


def _binary(option: str | None, name: str) -> Path | None:
    """The option's binary, else one on PATH; None lets pytest-kind download its own."""
    if option:
        return Path(option).resolve()
    found = shutil.which(name)
    return Path(found) if found else None


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Iterator[Any]:
    """One kind cluster, made by pytest-kind with its command-line options (see README.md).

    KindCluster puts its files under ./.pytest-kind/NAME of the folder it is made in, and
    keeps those paths relative: made in build/e2e with its paths then made absolute, they
    stay out of the work tree, whatever the current folder. `kind` and `kubectl` on PATH are
    used when present; otherwise pytest-kind downloads the versions it pins.
    """
    from pytest_kind import KindCluster

    option = request.config.getoption
    name = option("cluster_name")
    if name == "pytest-kind":  # the plugin's default: this suite's own name instead
        name = CLUSTER
    WORK.mkdir(parents=True, exist_ok=True)
    with contextlib.chdir(WORK):
        kind = KindCluster(
            name,
            _option_path(option("kubeconfig")),
            image=option("kind_image"),
            kind_path=_binary(option("kind_bin"), "kind"),
            kubectl_path=_binary(option("kind_kubectl_bin"), "kubectl"),
        )
    for attribute in ("path", "kubeconfig_path", "kind_path", "kubectl_path"):
        setattr(kind, attribute, WORK / getattr(kind, attribute))
    kind.create()
    try:
        yield kind
    finally:
        if not option("keep_cluster"):
            kind.delete()


def _docker(*args: str, stdin: str | None = None) -> str:
    """Run docker from the repository root; fail with the end of its output when it fails."""
    done = subprocess.run(
        ["docker", *args],
        cwd=REPO,
        input=stdin,
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
        pytest.fail(f"docker {' '.join(args)} exited {done.returncode}:\n{tail}", pytrace=False)
    return done.stdout.strip()


def runner_image() -> None:
    """Build images/runner as RUNNER_IMAGE (it has pytest: the quickstart's criteria run it)."""
    _docker("build", "--file=images/runner/Dockerfile", f"--tag={RUNNER_IMAGE}", ".")


@pytest.fixture(scope="module")
def images(cluster: Any) -> dict[str, str]:
    """The operator and runner images, built from the repository and loaded into kind.

    Returns each image's ID: as a Pod annotation it makes a kept cluster (--keep-cluster)
    roll its Deployments when a rerun rebuilt their image under the same tag.
    """
    _docker("build", "--file=images/operator/Dockerfile", f"--tag={OPERATOR_IMAGE}", ".")
    runner_image()
    ids = {}
    for image in (OPERATOR_IMAGE, RUNNER_IMAGE):
        cluster.load_docker_image(image)
        ids[image] = _docker("image", "inspect", "--format={{.Id}}", image)
    return ids


@pytest.fixture(scope="module")
def kube(cluster: Any) -> Kube:
    """The test namespace, where every Pod must pass the restricted Pod Security Standard."""
    kube = Kube(cluster, NAMESPACE)
    restricted = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    namespace = {"metadata": {"name": NAMESPACE, "labels": restricted}}
    kube.apply({"apiVersion": "v1", "kind": "Namespace", **namespace})
    return kube


def _restricted_container() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }


def git_server_objects(bundle: bytes, namespace: str, image_id: str) -> list[dict[str, Any]]:
    """A ConfigMap with the bundle, and a git daemon (in the runner image) serving it."""
    labels = {"app.kubernetes.io/name": GIT_SERVER}
    annotations = {IMAGE_ID_ANNOTATION: image_id}
    serve = (
        "git clone --bare --quiet /bundle/repo.bundle /srv/textkit.git"
        " && exec git daemon --verbose --informative-errors --base-path=/srv --export-all"
        f" --reuseaddr --listen=0.0.0.0 --port={GIT_PORT} /srv"
    )
    pod_spec = {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "fsGroup": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "git-daemon",
                "image": RUNNER_IMAGE,
                "imagePullPolicy": "Never",
                "command": ["sh", "-c", serve],
                "ports": [{"name": "git", "containerPort": GIT_PORT}],
                "readinessProbe": {"tcpSocket": {"port": "git"}, "periodSeconds": 2},
                "resources": {
                    "requests": {"cpu": "50m", "memory": "64Mi"},
                    "limits": {"memory": "256Mi"},
                },
                "securityContext": _restricted_container(),
                "volumeMounts": [
                    {"name": "bundle", "mountPath": "/bundle", "readOnly": True},
                    {"name": "srv", "mountPath": "/srv"},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            }
        ],
        "volumes": [
            {"name": "bundle", "configMap": {"name": f"{GIT_SERVER}-bundle"}},
            {"name": "srv", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{GIT_SERVER}-bundle", "namespace": namespace},
            "binaryData": {"repo.bundle": base64.b64encode(bundle).decode()},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": GIT_SERVER, "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels, "annotations": annotations},
                    "spec": pod_spec,
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": GIT_SERVER, "namespace": namespace, "labels": labels},
            "spec": {
                "selector": labels,
                "ports": [{"name": "git", "port": GIT_PORT, "targetPort": "git"}],
            },
        },
    ]


def sample_repository_bundle() -> bytes:
    """The quickstart's sample repository (make_sample_repo.py) as a git bundle."""
    with tempfile.TemporaryDirectory(prefix="agentfleet-e2e-") as tmp:
        repo, bundle = Path(tmp) / "textkit", Path(tmp) / "repo.bundle"
        for argv in (
            [sys.executable, str(QUICKSTART / "make_sample_repo.py"), str(repo)],
            ["git", "-C", str(repo), "bundle", "create", str(bundle), "--all"],
        ):
            done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                pytest.fail(f"{' '.join(argv)} failed: {done.stderr.strip()}", pytrace=False)
        return bundle.read_bytes()


@pytest.fixture(scope="module")
def git_url(kube: Kube, images: dict[str, str]) -> str:
    """The URL of the sample repository, served by a git daemon in the namespace."""
    bundle = sample_repository_bundle()
    kube.apply(*git_server_objects(bundle, kube.namespace, images[RUNNER_IMAGE]))
    kube.wait_available(GIT_SERVER)
    return f"git://{GIT_SERVER}.{kube.namespace}.svc.cluster.local/textkit.git"


@pytest.fixture(scope="module")
def release(kube: Kube, images: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """The chart installed with the images built here, watching the test namespace."""
    values = {
        "image": {"repository": OPERATOR_REPOSITORY, "tag": TAG, "pullPolicy": "Never"},
        "runner": {
            "image": {"repository": RUNNER_REPOSITORY, "tag": TAG},
            "imagePullPolicy": "Never",
        },
        "watchNamespaces": [kube.namespace],
        "workspace": {"size": "1Gi"},
        "podAnnotations": {IMAGE_ID_ANNOTATION: images[OPERATOR_IMAGE]},
    }
    values_file = tmp_path_factory.mktemp("helm") / "values.json"
    values_file.write_text(json.dumps(values), encoding="utf-8")  # JSON is YAML
    try:
        # upgrade --install: a cluster kept from an earlier run (--keep-cluster) has the release
        kube.helm(
            "upgrade", "--install", RELEASE, str(CHART), f"--values={values_file}", "--timeout=5m"
        )
    except E2EError as exc:
        kube.fail(str(exc))
    kube.wait_available(RELEASE)
    crds = sorted(path.stem for path in (CHART / "files" / "crds").glob("*.yaml"))
    try:
        kube.kubectl(
            "wait", "--for=condition=Established", *(f"crd/{crd}" for crd in crds), "--timeout=60s"
        )
    except E2EError as exc:
        kube.fail(str(exc))
    return RELEASE
