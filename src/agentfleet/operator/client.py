"""The operator's own calls to the Kubernetes API: raw JSON, rate-limited, counted.

kopf does the watching; every write the operator decides on goes through `KubeApi`. It
speaks JSON dicts, not the official client's generated models: the operator already holds
the objects as dicts (kopf bodies, `build_pod`), and deserialising each answer into
`V1Pod` costs more than the request itself at hundreds of Pods per second.

The official Python client, unlike client-go, has no client-side rate limit, so the token
bucket here gives the operator the same `--qps` / `--burst` knobs kubectl and controllers
built on client-go have. A bucket is a dozen lines; a dependency for it would be more.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from ..metrics import KUBERNETES_REQUESTS
from ..models import GROUP, KINDS, VERSION

JSON = dict[str, Any]


@dataclass(frozen=True)
class ResourcePath:
    group: str
    version: str
    plural: str
    namespaced: bool = True

    def url(self, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        root = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        path = root
        if self.namespaced and namespace is not None:
            path += f"/namespaces/{quote(namespace, safe='')}"
        path += f"/{self.plural}"
        if name is not None:
            path += f"/{quote(name, safe='')}"
        if sub is not None:
            path += f"/{sub}"
        return path


RESOURCES: dict[str, ResourcePath] = {
    "Pod": ResourcePath("", "v1", "pods"),
    "PersistentVolumeClaim": ResourcePath("", "v1", "persistentvolumeclaims"),
    "Event": ResourcePath("", "v1", "events"),
    "NetworkPolicy": ResourcePath("networking.k8s.io", "v1", "networkpolicies"),
    "Lease": ResourcePath("coordination.k8s.io", "v1", "leases"),
}


def resource_of(kind: str) -> ResourcePath:
    """The path of a kind the operator writes: built-ins above, agentfleet's kinds from models."""
    found = RESOURCES.get(kind)
    if found is not None:
        return found
    model = KINDS.get(kind)
    if model is None:
        raise KeyError(f"the operator does not write {kind} objects")
    return ResourcePath(GROUP, VERSION, model.PLURAL)


class ApiError(Exception):
    """A non-2xx answer, with the API server's Status reason and message."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code, self.reason, self.message = code, reason, message


class TokenBucket:
    """client-go's flowcontrol: `qps` tokens a second, at most `burst` saved up."""

    def __init__(
        self,
        qps: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if qps > 0 and burst < 1:
            raise ValueError(f"burst must be at least 1 when qps is set, not {burst}")
        self.qps, self.burst = qps, burst
        self._clock, self._sleep = clock, sleep
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """Wait for a token; returns the seconds waited. qps <= 0 means no limit."""
        if self.qps <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1
            wait = -self._tokens / self.qps if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


def load_client_configuration() -> k8s.Configuration:
    """In a Pod, its service account; elsewhere, the current kubeconfig context (as kubectl)."""
    configuration = k8s.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)
    except k8s_config.ConfigException:
        k8s_config.load_kube_config(client_configuration=configuration)
    return configuration


class KubeApi:
    """Create-if-absent, patch and list, as JSON, within the client's rate limit."""

    def __init__(
        self,
        configuration: k8s.Configuration,
        *,
        qps: float = 50.0,
        burst: int = 100,
        pool_size: int = 8,
    ) -> None:
        configuration.connection_pool_maxsize = max(pool_size, 4)
        self._client = k8s.ApiClient(configuration)
        self.bucket = TokenBucket(qps, burst)
        self.timeout = (5.0, 30.0)
        """Connect and read timeouts: a half-open connection must not hang the reconciler."""
        self._count_lock = threading.Lock()
        self.calls = 0
        """Requests made so far: what the throughput benchmark divides by the Pods made."""

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> JSON:
        self.bucket.take()
        url = path + ("?" + urlencode(query) if query else "")
        headers = {"Accept": "application/json", "Content-Type": content_type}
        _, full_url, headers, data, _ = self._client.param_serialize(
            method, url, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        response = self._client.call_api(
            method, full_url, header_params=headers, body=data, _request_timeout=self.timeout
        )
        raw = response.read()
        with self._count_lock:
            self.calls += 1
        KUBERNETES_REQUESTS.labels(verb=method.lower(), code=str(response.status)).inc()
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            answer = {"message": raw[:200].decode(errors="replace")}
        if not 200 <= response.status < 300:
            raise ApiError(
                response.status, str(answer.get("reason", "")), str(answer.get("message", ""))
            )
        return answer if isinstance(answer, dict) else {}

    def create(self, obj: JSON) -> JSON | None:
        """POST `obj`; None when it already exists, which the operator treats as done."""
        kind = obj["kind"]
        namespace = obj["metadata"].get("namespace")
        try:
            return self.request("POST", resource_of(kind).url(namespace), obj)
        except ApiError as exc:
            if exc.code == 409 and exc.reason == "AlreadyExists":
                return None
            raise

    def get(self, kind: str, namespace: str | None, name: str) -> JSON | None:
        try:
            return self.request("GET", resource_of(kind).url(namespace, name))
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    def patch(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        json_patch: bool = False,
    ) -> JSON:
        content_type = (
            "application/json-patch+json" if json_patch else "application/merge-patch+json"
        )
        return self.request(
            "PATCH",
            resource_of(kind).url(namespace, name, subresource),
            body,
            content_type=content_type,
        )

    def list(self, kind: str, namespace: str | None, label_selector: str | None = None) -> JSON:
        query = {"labelSelector": label_selector} if label_selector else None
        return self.request("GET", resource_of(kind).url(namespace), query=query)
