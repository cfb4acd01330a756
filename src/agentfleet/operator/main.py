"""`agentfleet operator`: kopf's watches in, the reconciler's writes out, /metrics beside.

kopf runs in the calling thread with its own event loop; the reconciler in a thread of its
own. Both speak to the API with the same credentials: kopf logs in through the handler
below, from the configuration the reconciler's client uses.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes import client as k8s
from prometheus_client import start_http_server

from ..metrics import REGISTRY
from .cache import ClusterCache
from .client import KubeApi, load_client_configuration
from .handlers import register_all
from .leader import LeaseElector
from .reconciler import Reconciler
from .settings import OperatorSettings

log = logging.getLogger(__name__)

STALL_LIMIT_SECONDS = 300.0
"""Longer than any round takes, API timeouts included (5 s to connect, 30 s to read)."""


def connection_info(configuration: k8s.Configuration) -> kopf.ConnectionInfo:
    """kopf's view of the client's credentials: server, CA, client certificate or token."""
    token = (configuration.api_key or {}).get("authorization") or (configuration.api_key or {}).get(
        "BearerToken"
    )
    scheme = None
    if token and " " in token:
        scheme, token = token.split(" ", 1)
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme=scheme or ("Bearer" if token else None),
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


class NoDiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf's diff-base, for change handlers this operator does not have: build none.

    kopf deep-copies every event's body to compute it (about a third of kopf's CPU at
    hundreds of Pods a second, bench/README.md); event handlers never read it.
    """

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        return None

    def fetch(self, *, body: Any) -> Any:
        return None


def configure_kopf(target: kopf.OperatorSettings, settings: OperatorSettings) -> None:
    # Every replica watches (a standby's cache stays warm); the Lease elects the one that
    # writes (leader.py), so kopf's own peering is not used.
    target.peering.standalone = True
    target.peering.clusterwide = not settings.namespaces
    target.persistence.diffbase_storage = NoDiffBase()
    target.posting.level = logging.WARNING
    target.watching.server_timeout = 300
    target.watching.client_timeout = 330


@dataclass
class Operator:
    """One operator: its client, cache and reconciler, and the kopf registry feeding them."""

    settings: OperatorSettings
    configuration: k8s.Configuration
    api: KubeApi
    cache: ClusterCache
    reconciler: Reconciler
    registry: kopf.OperatorRegistry

    @classmethod
    def build(
        cls, settings: OperatorSettings, configuration: k8s.Configuration | None = None
    ) -> Operator:
        explicit = configuration is not None
        configuration = configuration or load_client_configuration()
        api = KubeApi(configuration, qps=settings.qps, burst=settings.burst)
        cache = ClusterCache(settings.image_pull_grace_seconds)
        leader = None
        if settings.leader_election:
            # Its own client: renewals never wait behind the reconciler's rate limit, and
            # give up well within the renew deadline.
            lease_api = KubeApi(configuration, qps=0, burst=1, pool_size=1)
            lease_api.timeout = (2.0, 3.0)
            leader = LeaseElector(
                lease_api, settings.leader_election_namespace, settings.leader_election
            )
        reconciler = Reconciler(api, cache, settings, leader=leader)
        registry = kopf.OperatorRegistry()
        register_all(registry, reconciler)

        @kopf.on.login(registry=registry)
        def login(**_: Any) -> kopf.ConnectionInfo:
            # In a Pod the service-account token rotates: read it again at each login.
            return connection_info(configuration if explicit else load_client_configuration())

        @kopf.on.probe(id="reconciler", registry=registry)
        def reconciler_alive(**_: Any) -> float:
            # kopf's /healthz answers 500 when a probe fails: a reconciler stuck on a hung
            # connection gets its Pod restarted instead of looking healthy forever.
            stalled = reconciler.stalled_for()
            limit = max(STALL_LIMIT_SECONDS, 3 * settings.resync_seconds)
            if stalled > limit:
                raise kopf.PermanentError(f"the reconciler has not come round for {stalled:.0f}s")
            return round(stalled, 1)

        @kopf.on.startup(registry=registry)
        def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
            configure_kopf(settings, reconciler.settings)

        return cls(settings, configuration, api, cache, reconciler, registry)

    def run(
        self,
        *,
        stop_flag: threading.Event | None = None,
        ready_flag: threading.Event | None = None,
        kopf_settings: Callable[[kopf.OperatorSettings], None] | None = None,
        serve_metrics: bool = True,
    ) -> None:
        """Block until `stop_flag` is set (or a signal, when in the main thread)."""
        metrics_server = None
        if serve_metrics and self.settings.metrics_port:
            metrics_server, _ = start_http_server(self.settings.metrics_port, registry=REGISTRY)
        worker = threading.Thread(
            target=self.reconciler.run, name="agentfleet-reconciler", daemon=True
        )
        worker.start()
        elector = None
        if self.reconciler.leader is not None:
            elector = threading.Thread(
                target=self.reconciler.leader.run, name="agentfleet-leader", daemon=True
            )
            elector.start()
        settings = kopf.OperatorSettings()
        configure_kopf(settings, self.settings)
        if kopf_settings is not None:
            kopf_settings(settings)
        namespaces = list(self.settings.namespaces)
        try:
            asyncio.run(
                kopf.operator(
                    registry=self.registry,
                    settings=settings,
                    clusterwide=not namespaces,
                    namespaces=namespaces,
                    liveness_endpoint=self.settings.liveness or None,
                    stop_flag=stop_flag,
                    ready_flag=ready_flag,
                    standalone=True,
                )
            )
        finally:
            self.reconciler.stop()
            worker.join(10)
            if elector is not None and self.reconciler.leader is not None:
                self.reconciler.leader.stop()
                elector.join(10)
            self.api.close()
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()
