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
from datetime import UTC, datetime
from typing import Any

from .client import ApiError, KubeApi

log = logging.getLogger(__name__)

LEASE = "Lease"
MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def identity() -> str:
    """The Pod's name where there is one, made unique: two processes never share it."""
    host = os.environ.get("HOSTNAME") or socket.gethostname()
    return f"{host}_{uuid.uuid4().hex[:8]}"


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
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api, self.namespace, self.name = api, namespace, name
        self.holder = holder or identity()
        self.lease_seconds = lease_seconds
        self.renew_deadline_seconds = renew_deadline_seconds
        self.renew_seconds = renew_seconds
        self.clock = clock
        self.monotonic = monotonic
        self.leading = threading.Event()
        """Set while this replica believes it holds the Lease; `is_leading()` also checks
        that the belief is recent enough to act on."""
        self._stop = threading.Event()
        self._renewed_at = float("-inf")
        self._seen: tuple[Any, ...] | None = None
        self._seen_at = 0.0

    def is_leading(self) -> bool:
        """True while the last successful renewal started less than the renew deadline ago.

        Checked before every write: a holder whose renewals stall stops acting before the
        Lease can pass to another replica (renew deadline < lease duration).
        """
        fresh = self.monotonic() - self._renewed_at < self.renew_deadline_seconds
        return self.leading.is_set() and fresh

    def run(self) -> None:
        """Try to acquire or renew until stopped; give the Lease up when stopping."""
        while not self._stop.is_set():
            attempt = self.monotonic()  # a renewal counts from before the call, not after
            try:
                held: bool | None = self.try_acquire_or_renew()
            except Exception as exc:  # unreachable: keep leading until the deadline passes
                log.warning("leader election %s/%s: %s", self.namespace, self.name, exc)
                held = None
            if held:
                self._renewed_at = attempt
                if not self.leading.is_set():
                    log.info("leading as %s (Lease %s/%s)", self.holder, self.namespace, self.name)
                    self.leading.set()
            elif self.leading.is_set() and (held is False or not self.is_leading()):
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

    def _expired(self, lease: dict[str, Any]) -> bool:
        """Whether another holder's Lease has run out, by this replica's own clock.

        As client-go: the time that counts is when this replica last saw the record change,
        not the holder's renewTime, so clocks that disagree between nodes cannot make a fresh
        Lease look expired. A replica that just started waits one full duration.
        """
        spec = lease.get("spec") or {}
        record = (
            spec.get("holderIdentity"),
            spec.get("renewTime"),
            lease["metadata"].get("resourceVersion"),
        )
        now = self.monotonic()
        if record != self._seen:
            self._seen, self._seen_at = record, now
        duration = int(spec.get("leaseDurationSeconds") or self.lease_seconds)
        return now - self._seen_at > duration

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
        mine = holder == self.holder
        if holder and not mine and not self._expired(lease):
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        if mine:
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
            if exc.code == 409 and not mine:
                return False
            raise  # our own renewal raced something: retried until the renew deadline
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
