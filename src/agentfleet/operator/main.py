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
from .reconciler import Reconciler
from .settings import OperatorSettings

log = logging.getLogger(__name__)


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


def configure_kopf(target: kopf.OperatorSettings, settings: OperatorSettings) -> None:
    if settings.peering:
        target.peering.name = settings.peering
        target.peering.standalone = False
        target.peering.mandatory = True
        # Peers of equal priority all pause; distinct ones elect the highest as active.
        target.peering.priority = settings.priority
    else:
        target.peering.standalone = True
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
        reconciler = Reconciler(api, cache, settings)
        registry = kopf.OperatorRegistry()
        register_all(registry, reconciler)

        @kopf.on.login(registry=registry)
        def login(**_: Any) -> kopf.ConnectionInfo:
            # In a Pod the service-account token rotates: read it again at each login.
            return connection_info(configuration if explicit else load_client_configuration())

        @kopf.on.startup(registry=registry)
        def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
            configure_kopf(settings, reconciler.settings)

        return cls(settings, configuration, api, cache, reconciler, registry)

    def run_reconciler(self, stop: threading.Event) -> None:
        """List everything once, then loop; wait for kopf's first event (not on standby)."""
        while not stop.is_set():
            if self.reconciler.activated.wait(0.2):
                break
        if stop.is_set():
            return
        while not stop.is_set():
            try:
                self.reconciler.resync_from_api()
                break
            except Exception as exc:  # the API is not reachable yet: kopf says so too
                log.warning("listing the cluster failed, retrying: %s", exc)
                stop.wait(2.0)
        self.reconciler.run()

    def run(
        self,
        *,
        stop_flag: threading.Event | None = None,
        ready_flag: threading.Event | None = None,
        kopf_settings: Callable[[kopf.OperatorSettings], None] | None = None,
        serve_metrics: bool = True,
    ) -> None:
        """Block until `stop_flag` is set (or a signal, when in the main thread)."""
        stop = threading.Event()
        metrics_server = None
        if serve_metrics and self.settings.metrics_port:
            metrics_server, _ = start_http_server(self.settings.metrics_port, registry=REGISTRY)
        worker = threading.Thread(
            target=self.run_reconciler, args=(stop,), name="agentfleet-reconciler", daemon=True
        )
        worker.start()
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
                    standalone=not self.settings.peering,
                    peering_name=self.settings.peering,
                    priority=self.settings.priority if self.settings.peering else None,
                )
            )
        finally:
            stop.set()
            self.reconciler.stop()
            worker.join(10)
            self.api.close()
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()
