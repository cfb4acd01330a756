"""The Pod of one run, built from the models alone: no API call, no clock.

The run spec travels in the Pod itself, as the annotation `agentfleet.dev/run-spec`, and
reaches the containers as the file /etc/agentfleet/run.json through a downwardAPI volume:

- no extra object: a ConfigMap per run would cost one more API call per Pod (and one more
  object to clean up), against a budget of about two calls per Pod;
- the spec stays on the Pod for as long as the Pod exists, so `kubectl get pod -o yaml`
  shows exactly what the run was asked to do;
- not an environment variable: every process the agent starts would inherit it, and Linux
  refuses to exec with a single variable over 128 KiB (MAX_ARG_STRLEN).

The API server caps a Pod's annotations at 256 KiB in all; a larger spec is refused here
with `PodSpecTooLarge`, before any call, with a message that says what to shorten.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from .. import __version__
from ..core.actions import RunRequest
from ..models.agent import AgentConfig, ResourceLimits
from ..models.batch import TicketBatch
from ..models.meta import DNS1123_SUBDOMAIN
from ..models.project import Project
from ..runner.spec import RunSpec
from .metadata import (
    AGENT_LABEL,
    AGENT_TYPE_LABEL,
    APP_NAME_LABEL,
    ATTEMPT_LABEL,
    BATCH_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    RUN_LABEL,
    STAGE_LABEL,
    TASK_LABEL,
    InvalidObjectError,
    label_value,
    owner_references,
)
from .workspace import WORKSPACE_MOUNT, pod_run_spec, workspace_claim_name

RUN_SPEC_ANNOTATION: Final = "agentfleet.dev/run-spec"
SPEC_DIR: Final = "/etc/agentfleet"
SPEC_FILE: Final = "run.json"
SPEC_PATH: Final = f"{SPEC_DIR}/{SPEC_FILE}"
TERMINATION_LOG: Final = "/dev/termination-log"
HOME_DIR: Final = "/home/agentfleet"
TMP_DIR: Final = "/tmp"

RUNNER_ARGV: Final = ("agentfleet", "runner", "--spec", SPEC_PATH, "--result", TERMINATION_LOG)
"""The run itself; its result is the container's termination message."""
PREPARE_ARGV: Final = ("agentfleet", "runner", "prepare", "--spec", SPEC_PATH)
"""The init container: make the spec's worktree (on its branch) and context dir ready on the
workspace volume. Data reaches it as the spec file and the environment below, never as argv
interpolated by a shell."""
REPOSITORY_URL_ENV: Final = "AGENTFLEET_REPOSITORY_URL"
BASE_BRANCH_ENV: Final = "AGENTFLEET_BASE_BRANCH"

MAX_ANNOTATIONS_BYTES: Final = 256 * 1024
"""The API server's limit on the keys and values of all of an object's annotations."""
RUNNER_APP: Final = "agentfleet-runner"
DEFAULT_RUNNER_IMAGE: Final = f"ghcr.io/agentfleet/runner:{__version__}"

_POD_NAME = re.compile(DNS1123_SUBDOMAIN)
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_RESERVED_ENV = frozenset({"HOME"})
_WORKSPACE_VOLUME = "workspace"
_SPEC_VOLUME = "run-spec"
_HOME_VOLUME = "home"
_TMP_VOLUME = "tmp"


class PodSpecTooLarge(InvalidObjectError):  # noqa: N818
    """The run spec does not fit in the Pod's annotations."""


@dataclass(frozen=True, kw_only=True)
class PodSettings:
    """What the installation decides for every run's Pod, rather than each agent."""

    runner_image: str = DEFAULT_RUNNER_IMAGE
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    run_as_user: int = 1000
    run_as_group: int = 1000
    fs_group: int = 1000
    request_ratio: float = 1.0
    """requests = limits x this; 1.0 gives the Guaranteed QoS class, the last to be evicted."""
    service_account_name: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    """Secrets the kubelet pulls private runner and agent images with."""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    """Where runs may go: e.g. a node pool kept for agents."""

    def __post_init__(self) -> None:
        if self.run_as_user < 1:
            raise InvalidObjectError("run_as_user must not be 0: the restricted policy bans root")
        if self.run_as_group < 0 or self.fs_group < 0:
            raise InvalidObjectError("run_as_group and fs_group must not be negative")
        if not 0 < self.request_ratio <= 1:
            raise InvalidObjectError(f"request_ratio must be in (0, 1], not {self.request_ratio}")


DEFAULT_POD_SETTINGS: Final = PodSettings()


def run_labels(run: RunRequest, agent: AgentConfig) -> dict[str, str]:
    """The labels of a run's Pod: what the operator lists and watches Pods by."""
    labels = {
        MANAGED_BY_LABEL: MANAGED_BY,
        APP_NAME_LABEL: RUNNER_APP,
        RUN_LABEL: label_value(run.name),
    }
    if run.batch is not None:
        labels[BATCH_LABEL] = label_value(run.batch)
    if run.task is not None:
        labels[TASK_LABEL] = label_value(run.task)
    labels[STAGE_LABEL] = label_value(run.stage)
    labels[ATTEMPT_LABEL] = label_value(str(run.attempt))
    labels[AGENT_LABEL] = label_value(run.agent)
    labels[AGENT_TYPE_LABEL] = label_value(agent.spec.agent_type.value)
    return labels


def container_resources(limits: ResourceLimits, request_ratio: float = 1.0) -> dict[str, Any]:
    """requests/limits from an agent's resourceLimits; empty when it sets none.

    memoryMb and diskMb are MiB (the local engine reads them so too); CPU goes in
    millicores, the API's finest unit, so 1.5 cores is "1500m".
    """
    limit: dict[str, str] = {}
    request: dict[str, str] = {}
    if limits.cpu_cores is not None:
        millicores = max(1, round(limits.cpu_cores * 1000))
        limit["cpu"] = f"{millicores}m"
        request["cpu"] = f"{max(1, round(millicores * request_ratio))}m"
    for key, mebibytes in (("memory", limits.memory_mb), ("ephemeral-storage", limits.disk_mb)):
        if mebibytes is not None:
            limit[key] = f"{mebibytes}Mi"
            request[key] = f"{max(1, int(mebibytes * request_ratio))}Mi"
    return {"limits": limit, "requests": request} if limit else {}


def _container_security() -> dict[str, Any]:
    """The container half of the restricted Pod Security Standard, read-only root included."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }


def _pod_security(settings: PodSettings) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": settings.run_as_user,
        "runAsGroup": settings.run_as_group,
        "fsGroup": settings.fs_group,
        # Without it the kubelet re-owns every file of the workspace at each Pod's start.
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _mounts() -> list[dict[str, Any]]:
    return [
        {"name": _WORKSPACE_VOLUME, "mountPath": WORKSPACE_MOUNT},
        {"name": _SPEC_VOLUME, "mountPath": SPEC_DIR, "readOnly": True},
        {"name": _HOME_VOLUME, "mountPath": HOME_DIR},
        {"name": _TMP_VOLUME, "mountPath": TMP_DIR},
    ]


def _volumes(batch_name: str) -> list[dict[str, Any]]:
    spec_file = {
        "path": SPEC_FILE,
        "fieldRef": {"fieldPath": f"metadata.annotations['{RUN_SPEC_ANNOTATION}']"},
    }
    return [
        {
            "name": _WORKSPACE_VOLUME,
            "persistentVolumeClaim": {"claimName": workspace_claim_name(batch_name)},
        },
        {"name": _SPEC_VOLUME, "downwardAPI": {"items": [spec_file]}},
        {"name": _HOME_VOLUME, "emptyDir": {}},
        {"name": _TMP_VOLUME, "emptyDir": {}},
    ]


def _env_from(secret: str | None) -> list[dict[str, Any]]:
    return [{"secretRef": {"name": secret}}] if secret else []


def _agent_env(agent: AgentConfig) -> list[dict[str, str]]:
    """HOME, then the agent's baseExecutor.env as given; names the API would refuse fail here."""
    env = [{"name": "HOME", "value": HOME_DIR}]
    for name, value in agent.spec.base_executor.env.items():
        if not _ENV_NAME.fullmatch(name):
            raise InvalidObjectError(
                f"agent {agent.name!r}: env name {name!r} is not valid in a Pod "
                "(letters, digits, '_', '-', '.', not starting with a digit)"
            )
        if name in _RESERVED_ENV:
            raise InvalidObjectError(
                f"agent {agent.name!r}: env {name} is set by agentfleet ({HOME_DIR}, the only "
                "writable home under a read-only root filesystem)"
            )
        env.append({"name": name, "value": value})
    return env


def _check_annotations(name: str, annotations: Mapping[str, str]) -> None:
    size = sum(len(key.encode()) + len(value.encode()) for key, value in annotations.items())
    if size > MAX_ANNOTATIONS_BYTES:
        raise PodSpecTooLarge(
            f"run {name}: the run spec takes {size} bytes of annotations, over the API's "
            f"limit of {MAX_ANNOTATIONS_BYTES}; shorten the task's description or the tickets "
            "(a refinement carries every ticket of its batch), or split the batch"
        )


def build_pod(
    run: RunRequest,
    spec: RunSpec,
    agent: AgentConfig,
    project: Project,
    batch: TicketBatch,
    *,
    namespace: str,
    image: str | None = None,
    settings: PodSettings = DEFAULT_POD_SETTINGS,
    owner: Mapping[str, Any] | None = None,
    co_locate: bool = False,
) -> dict[str, Any]:
    """The Pod manifest of one run; the same input always gives the same dict.

    Named after the run, so creating it again is a conflict the operator can treat as
    success. `owner` (apiVersion, kind, name, uid of the AgentTask) makes the task the Pod's
    controller. The agent's image runs the run; the init container needs git and
    agentfleet, so it runs the runner image (`image`, else `settings.runner_image`).
    """
    if spec.name != run.name:
        raise InvalidObjectError(f"the spec is for run {spec.name!r}, not {run.name!r}")
    if len(run.name) > 253 or not _POD_NAME.fullmatch(run.name):
        raise InvalidObjectError(f"run name {run.name!r} is not a valid Pod name")
    if run.timeout_seconds is not None and run.timeout_seconds < 1:
        raise InvalidObjectError(f"run {run.name!r}: timeout {run.timeout_seconds}s is not > 0")
    if run.batch is not None and run.batch != batch.name:
        raise InvalidObjectError(f"run {run.name!r} is of batch {run.batch!r}, not {batch.name!r}")
    in_pod = pod_run_spec(spec)
    annotations = {RUN_SPEC_ANNOTATION: in_pod.model_dump_json(by_alias=True, exclude_none=True)}
    _check_annotations(run.name, annotations)

    runner_image = image or settings.runner_image
    executor = agent.spec.base_executor
    credentials = agent.spec.credentials_secret_ref
    repository = project.spec.repository
    limits = agent.spec.environment_requirements.resource_limits

    prepare: dict[str, Any] = {
        "name": "prepare-worktree",
        "image": runner_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": list(PREPARE_ARGV),
        "workingDir": WORKSPACE_MOUNT,
        "env": [
            {"name": "HOME", "value": HOME_DIR},
            {"name": REPOSITORY_URL_ENV, "value": repository.url},
            {"name": BASE_BRANCH_ENV, "value": repository.base_branch},
        ],
        "envFrom": _env_from(
            repository.credentials_secret_ref.name if repository.credentials_secret_ref else None
        ),
        # The same as the runner's: a Pod's request is the larger of the two, so this costs
        # nothing and keeps the Guaranteed QoS class when requests equal limits.
        "resources": container_resources(limits, settings.request_ratio),
        "securityContext": _container_security(),
        "volumeMounts": _mounts(),
        # A failed clone says why in the Pod's status, not only in its log.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    runner: dict[str, Any] = {
        "name": "runner",
        "image": executor.image or runner_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": list(RUNNER_ARGV),
        "workingDir": in_pod.worktree,
        "env": _agent_env(agent),
        "envFrom": _env_from(credentials.name if credentials else None),
        "resources": container_resources(limits, settings.request_ratio),
        "securityContext": _container_security(),
        "volumeMounts": _mounts(),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": _pod_security(settings),
        "initContainers": [_drop_empty(prepare)],
        "containers": [_drop_empty(runner)],
        "volumes": _volumes(batch.name),
    }
    if run.timeout_seconds is not None:
        pod_spec["activeDeadlineSeconds"] = run.timeout_seconds
    if settings.service_account_name is not None:
        pod_spec["serviceAccountName"] = settings.service_account_name
    if settings.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in settings.image_pull_secrets]
    if settings.node_selector:
        pod_spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in settings.tolerations]
    if co_locate:
        # A ReadWriteOnce claim attaches to one node: every Pod of the batch goes there. The
        # first Pod matches its own term, which the scheduler accepts with no peer running.
        pod_spec["affinity"] = {
            "podAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {"matchLabels": {BATCH_LABEL: label_value(batch.name)}},
                        "topologyKey": "kubernetes.io/hostname",
                    }
                ]
            }
        }

    metadata: dict[str, Any] = {
        "name": run.name,
        "namespace": namespace,
        "labels": run_labels(run, agent),
        "annotations": annotations,
    }
    references = owner_references(owner)
    if references:
        metadata["ownerReferences"] = references
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def _drop_empty(container: dict[str, Any]) -> dict[str, Any]:
    """Leave out empty envFrom and resources, as `kubectl get -o yaml` would show them."""
    return {key: value for key, value in container.items() if value not in ([], {})}
