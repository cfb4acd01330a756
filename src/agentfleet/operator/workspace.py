"""A batch's workspace volume: its claim, and where each run's files live on it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from ..models.meta import DNS1123_SUBDOMAIN
from ..runner.spec import RunSpec
from .metadata import (
    APP_NAME_LABEL,
    BATCH_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    InvalidObjectError,
    fit_name,
    label_value,
    owner_references,
)

WORKSPACE_MOUNT: Final = "/workspace"
REPOSITORY_DIR: Final = f"{WORKSPACE_MOUNT}/repo"
"""The batch's clone, shared by every task's worktree (`git worktree add` from here)."""
WORKTREES_DIR: Final = f"{WORKSPACE_MOUNT}/worktrees"
RUNS_DIR: Final = f"{WORKSPACE_MOUNT}/runs"
CONTEXTS_DIR: Final = f"{WORKSPACE_MOUNT}/contexts"

WORKSPACE_APP = "agentfleet-workspace"
ACCESS_MODES = frozenset({"ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany"})
_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?([KMGTPE]i|[kMGTPE])?")
_PATH_COMPONENT = re.compile(DNS1123_SUBDOMAIN)


def workspace_claim_name(batch_name: str) -> str:
    """The PersistentVolumeClaim of a batch: `<batch>-workspace`, at most 63 characters."""
    return fit_name(_component(batch_name, "batch"), "-workspace")


def _component(name: str, what: str) -> str:
    """A name used as one path segment: a DNS-1123 name has no '/' and is never '..'."""
    if len(name) > 253 or not _PATH_COMPONENT.fullmatch(name):
        raise InvalidObjectError(f"{what} {name!r} is not a DNS-1123 name; it cannot name a folder")
    return name


def worktree_path(task: str) -> str:
    """The task's worktree: every stage of the task works in it, so QA sees what dev wrote."""
    return f"{WORKTREES_DIR}/{_component(task, 'task')}"


def run_dir(run: str) -> str:
    """The working directory of a run without a task (a refinement): its own folder."""
    return f"{RUNS_DIR}/{_component(run, 'run')}"


def context_path(run: str) -> str:
    """Where the runner writes the task context: per run, and outside every worktree."""
    return f"{CONTEXTS_DIR}/{_component(run, 'run')}"


def pod_run_spec(spec: RunSpec) -> RunSpec:
    """`spec` as the Pod sees it: paths on the workspace volume, no RLIMIT_AS.

    A driver builds one RunSpec for both engines; its local paths mean nothing in a Pod.
    The Pod's memory limit already bounds the run (an address-space limit on top would
    break runtimes that reserve large virtual ranges). Applying it twice changes nothing.
    """
    worktree = worktree_path(spec.task) if spec.task else run_dir(spec.name)
    return spec.model_copy(
        update={
            "worktree": worktree,
            "context_dir": context_path(spec.name),
            "memory_limit_bytes": None,
        }
    )


def build_workspace_claim(
    batch_name: str,
    *,
    namespace: str,
    storage_class: str | None,
    size: str,
    access_mode: str,
    owner: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The PVC holding a batch's clone, worktrees and run contexts.

    Owned by the batch, so it goes when the batch goes; pass `owner=None` to retain it.
    ReadWriteOnce suits a batch whose Pods share a node; Pods of one batch spread over
    nodes need ReadWriteMany. `storage_class=None` leaves the cluster's default class.
    """
    if access_mode not in ACCESS_MODES:
        raise InvalidObjectError(
            f"workspace access mode {access_mode!r}: use one of {', '.join(sorted(ACCESS_MODES))}"
        )
    if not _QUANTITY.fullmatch(size):
        raise InvalidObjectError(f"workspace size {size!r} is not a quantity such as '10Gi'")
    metadata: dict[str, Any] = {
        "name": workspace_claim_name(batch_name),
        "namespace": namespace,
        "labels": {
            MANAGED_BY_LABEL: MANAGED_BY,
            APP_NAME_LABEL: WORKSPACE_APP,
            BATCH_LABEL: label_value(batch_name),
        },
    }
    references = owner_references(owner)
    if references:
        metadata["ownerReferences"] = references
    spec: dict[str, Any] = {
        "accessModes": [access_mode],
        "resources": {"requests": {"storage": size}},
    }
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata, "spec": spec}
