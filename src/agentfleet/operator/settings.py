"""What an installation decides for the operator: watched namespaces, rate limits, defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..models.batch import TicketBatch
from .pods import DEFAULT_POD_SETTINGS, PodSettings


@dataclass(frozen=True)
class WorkspaceClaim:
    storage_class: str | None
    size: str
    access_mode: str
    retain: bool


@dataclass(frozen=True, kw_only=True)
class OperatorSettings:
    namespaces: tuple[str, ...] = ()
    """Where to watch; empty: every namespace (the ClusterRole the chart makes)."""
    leader_election: str | None = None
    """Name of the Lease that elects the one replica that writes; None: a single replica."""
    leader_election_namespace: str = "default"
    qps: float = 50.0
    burst: int = 100
    liveness: str = "http://0.0.0.0:8080/healthz"
    metrics_port: int = 9090
    pod: PodSettings = field(default_factory=lambda: DEFAULT_POD_SETTINGS)
    workspace_storage_class: str | None = None
    workspace_size: str = "10Gi"
    workspace_access_mode: str = "ReadWriteOnce"
    retain_workspaces: bool = False
    image_pull_grace_seconds: float = 120.0
    resync_seconds: float = 10.0
    """How often each batch is looked at with nothing changed: what makes timeouts fire."""
    relist_seconds: float = 300.0
    """How often everything is listed again: deletions a dropped watch missed are seen."""

    def workspace_of(self, batch: TicketBatch) -> WorkspaceClaim:
        """The batch's own choices first, then the installation's."""
        own = batch.spec.workspace
        return WorkspaceClaim(
            storage_class=own.storage_class_name or self.workspace_storage_class,
            size=own.size or self.workspace_size,
            access_mode=str(own.access_mode or self.workspace_access_mode),
            retain=self.retain_workspaces if own.retain is None else own.retain,
        )
