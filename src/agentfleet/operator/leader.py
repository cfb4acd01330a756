"""One writer among replicas: a coordination.k8s.io Lease, as client-go's leader election.

kopf's own peering pauses kopf's handlers on a standby replica, but it cannot pause the
reconciler thread, which is what writes here; so every replica runs kopf standalone (its
watches keep a standby's cache warm), and the Lease decides which replica's reconciler acts.
The holder renews every `renew_seconds`; it stops acting when it could not renew for
`renew_deadline_seconds`, before the Lease (`lease_seconds`) can pass to another replica.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from .client import ApiError, KubeApi

log = logging.getLogger(__name__)

LEASE = "Lease"
MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def identity() -> str:
    """The Pod's name where there is one, made unique: two processes never share it."""
    host = os.environ.get("HOSTNAME") or socket.gethostname()
    return f"{host}_{uuid.uuid4().hex[:8]}"


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, MICRO_TIME).replace(tzinfo=UTC)
    except ValueError:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None


class LeaseElector:
    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        name: str,
        *,
        holder: str | None = None,
        lease_seconds: int = 15,
        renew_deadline_seconds: float = 10.0,
        renew_seconds: float = 2.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api, self.namespace, self.name = api, namespace, name
        self.holder = holder or identity()
        self.lease_seconds = lease_seconds
        self.renew_deadline_seconds = renew_deadline_seconds
        self.renew_seconds = renew_seconds
        self.clock = clock
        self.leading = threading.Event()
        """Set while this replica holds the Lease: the reconciler acts only then."""
        self._stop = threading.Event()
        self._last_renewal = 0.0

    def run(self) -> None:
        """Try to acquire or renew until stopped; give the Lease up when stopping."""
        while not self._stop.is_set():
            try:
                held = self.try_acquire_or_renew()
            except Exception as exc:  # the API is unreachable: keep leading until the deadline
                log.warning("leader election %s/%s: %s", self.namespace, self.name, exc)
                held = None
            now = time.monotonic()
            if held:
                self._last_renewal = now
                if not self.leading.is_set():
                    log.info("leading as %s (Lease %s/%s)", self.holder, self.namespace, self.name)
                    self.leading.set()
            elif self.leading.is_set() and (
                held is False or now - self._last_renewal > self.renew_deadline_seconds
            ):
                log.warning("lost the Lease %s/%s; standing by", self.namespace, self.name)
                self.leading.clear()
            self._stop.wait(self.renew_seconds)
        self.release()

    def stop(self) -> None:
        self._stop.set()

    def _spec(self, transitions: int, acquired: str) -> dict[str, Any]:
        now = self.clock().strftime(MICRO_TIME)
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.lease_seconds,
            "acquireTime": acquired or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    def try_acquire_or_renew(self) -> bool:
        """True when this replica holds the Lease after the call."""
        lease = self.api.get(LEASE, self.namespace, self.name)
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": LEASE,
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(0, ""),
            }
            return self.api.create(body) is not None
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        renewed = _time(spec.get("renewTime")) or _time(spec.get("acquireTime"))
        duration = int(spec.get("leaseDurationSeconds") or self.lease_seconds)
        expired = renewed is None or self.clock() > renewed + timedelta(seconds=duration)
        if holder not in (self.holder, None, "") and not expired:
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == self.holder:
            new_spec = self._spec(transitions, spec.get("acquireTime") or "")
        else:
            new_spec = self._spec(transitions + 1, "")
        # The resourceVersion makes this a compare-and-swap: of two replicas taking an
        # expired Lease at once, one gets 409 Conflict.
        patch = {
            "metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]},
            "spec": new_spec,
        }
        try:
            self.api.patch(LEASE, self.namespace, self.name, patch)
        except ApiError as exc:
            if exc.code == 409:
                return False
            raise
        return True

    def release(self) -> None:
        """Hand the Lease over at once on a clean stop, instead of after it expires."""
        if not self.leading.is_set():
            return
        self.leading.clear()
        try:
            lease = self.api.get(LEASE, self.namespace, self.name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.holder:
                patch = {
                    "metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]},
                    "spec": {"holderIdentity": None, "renewTime": None, "acquireTime": None},
                }
                self.api.patch(LEASE, self.namespace, self.name, patch)
        except Exception as exc:
            log.info("releasing the Lease: %s", exc)
