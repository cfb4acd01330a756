"""The operator running for real against the filled-in emulator, and the test playing kubelet.

kopf runs in its own thread with its own loop (KUBERNETES_TESTING.md, pitfall 1); the
emulator serves from the test's loop, so every sync client call here goes through
`asyncio.to_thread` (pitfall 2).
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kopf
import kubernetes.client
import yaml

from agentfleet.crd import generate_crds
from agentfleet.models import GROUP, KINDS, VERSION
from agentfleet.models.run import AttemptPhase, RunResult
from agentfleet.operator.main import Operator
from agentfleet.operator.settings import OperatorSettings
from tests.support import kubelet
from tests.support.emulator import FilledEmulator

JSON = dict[str, Any]
NAMESPACE = "team-a"
PLURALS = {kind: model.PLURAL for kind, model in KINDS.items()}


@dataclass
class Faults:
    """API failures to inject into the operator's own client, as a flaky API server would.

    `arm(method, path_suffix, error, times)` makes the next `times` matching requests fail;
    `prepare` is what `Cluster.start_operator(prepare=...)` takes.
    """

    armed: list[tuple[str, str, Exception, list[int]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def arm(self, method: str, suffix: str, error: Exception, times: int = 1) -> None:
        with self.lock:
            self.armed.append((method, suffix, error, [times]))

    def pending(self) -> int:
        with self.lock:
            return sum(left[0] for *_, left in self.armed)

    def prepare(self, operator: Operator) -> None:
        real = operator.api.request

        def request(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            with self.lock:
                for want, suffix, error, left in self.armed:
                    if left[0] > 0 and method == want and path.endswith(suffix):
                        left[0] -= 1
                        raise error
            return real(method, path, *args, **kwargs)

        operator.api.request = request  # type: ignore[method-assign]


def fast_kopf(settings: kopf.OperatorSettings) -> None:
    """KUBERNETES_TESTING.md, pitfall 9: settings that keep tests fast."""
    settings.networking.error_backoffs = [0.1, 0.2, 0.5]
    settings.watching.reconnect_backoff = 0.01
    settings.queueing.idle_timeout = 0.5
    settings.persistence.consistency_timeout = 1
    settings.background.instant_exit_timeout = 0.1


def client_configuration(emu: FilledEmulator) -> kubernetes.client.Configuration:
    configuration = kubernetes.client.Configuration()
    configuration.host = str(emu.url).rstrip("/")
    return configuration


def manifests(text: str) -> list[JSON]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def result(outcome: str = "Succeeded", **fields: Any) -> RunResult:
    return RunResult(outcome=AttemptPhase(outcome), **fields)


@dataclass
class RunningOperator:
    """One operator process, as far as a test can tell: stop it and start another."""

    operator: Operator
    thread: threading.Thread
    stop_flag: threading.Event
    ready_flag: threading.Event

    def stop(self) -> None:
        """Stop kopf and the reconciler; call it through `asyncio.to_thread`."""
        self.stop_flag.set()
        self.thread.join(15)
        assert not self.thread.is_alive(), "kopf did not stop"


@dataclass
class Cluster:
    emu: FilledEmulator
    settings: OperatorSettings = field(
        default_factory=lambda: OperatorSettings(
            namespaces=(NAMESPACE,), liveness="", metrics_port=0, resync_seconds=0.5
        )
    )
    client: kubernetes.client.ApiClient = field(init=False)
    _operators: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        for crd in generate_crds().values():
            self.emu.add_crd(crd)
        self.add_namespace(NAMESPACE)
        self.client = kubernetes.client.ApiClient(client_configuration(self.emu))
        self.custom = kubernetes.client.CustomObjectsApi(self.client)
        self.core = kubernetes.client.CoreV1Api(self.client)
        self.kubelet = kubelet.Kubelet(self.core)

    def close(self) -> None:
        self.client.close()

    # --- the operator ----------------------------------------------------------------------

    async def start_operator(
        self,
        settings: OperatorSettings | None = None,
        prepare: Callable[[Operator], None] | None = None,
        serve_metrics: bool = False,
    ) -> RunningOperator:
        operator = Operator.build(settings or self.settings, client_configuration(self.emu))
        if prepare is not None:
            prepare(operator)
        stop, ready = threading.Event(), threading.Event()

        def run() -> None:
            operator.run(
                stop_flag=stop,
                ready_flag=ready,
                kopf_settings=fast_kopf,
                serve_metrics=serve_metrics,
            )

        thread = threading.Thread(target=run, name="kopf", daemon=True)
        thread.start()
        running = RunningOperator(operator, thread, stop, ready)
        try:
            await asyncio.to_thread(ready.wait, 10)
            # kopf's ready flag fires before its watches exist (pitfall 4).
            count = self._operators + 1
            await self.emu.wait_for_watches("pods", count)
            await self.emu.wait_for_watches("ticketbatches", count)
        except BaseException:
            await asyncio.to_thread(running.stop)
            raise
        self._operators = count
        return running

    # --- the user, with kubectl ------------------------------------------------------------

    def add_namespace(self, name: str) -> None:
        self.emu.write_object(
            "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        )

    async def apply(self, *docs: JSON, namespace: str = NAMESPACE) -> None:
        for doc in docs:
            body = copy.deepcopy(doc)
            body.setdefault("metadata", {})["namespace"] = namespace
            plural = PLURALS[body["kind"]]
            await asyncio.to_thread(
                self.custom.create_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                plural,
                body,
            )

    def get(self, kind: str, name: str) -> JSON | None:
        plural = PLURALS.get(kind, kind)
        return self.emu.get_object(plural, NAMESPACE, name)

    def status(self, kind: str, name: str) -> JSON:
        obj = self.get(kind, name) or {}
        return obj.get("status") or {}

    def phase(self, kind: str, name: str) -> str | None:
        return self.status(kind, name).get("phase")

    def objects(self, kind: str) -> list[JSON]:
        plural = PLURALS.get(kind, kind)
        return list(self.emu.list_objects(plural, NAMESPACE))

    def pods(self) -> list[JSON]:
        return self.objects("pods")

    def pod_names(self) -> set[str]:
        return {p["metadata"]["name"] for p in self.pods()}

    def events(self, reason: str | None = None) -> list[JSON]:
        return [e for e in self.objects("events") if reason is None or e["reason"] == reason]

    async def delete(self, kind: str, name: str) -> None:
        await asyncio.to_thread(
            self.custom.delete_namespaced_custom_object,
            GROUP,
            VERSION,
            NAMESPACE,
            PLURALS[kind],
            name,
        )

    async def until_events(self, reason: str, about: str | None = None) -> list[JSON]:
        """Events of `reason` (on the object `about`), once there are some: they are posted
        after the round's status writes, so a test that saw a status waits for them."""

        def found() -> list[JSON]:
            return [
                e
                for e in self.events(reason)
                if about is None or e["involvedObject"]["name"] == about
            ]

        return await self.until(found, what=f"a {reason} Event")

    async def annotate(self, kind: str, name: str, key: str, value: str | None) -> None:
        body = {"metadata": {"annotations": {key: value}}}
        await asyncio.to_thread(
            self.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            NAMESPACE,
            PLURALS[kind],
            name,
            body,
            _content_type="application/merge-patch+json",
        )

    # --- the kubelet -----------------------------------------------------------------------

    async def set_pod_status(self, name: str, build: Callable[[JSON], JSON]) -> None:
        pod = self.emu.get_object("pods", NAMESPACE, name)
        assert pod is not None, f"no Pod {name}"
        await asyncio.to_thread(self.kubelet.apply, pod, build(pod))

    async def succeed(self, name: str, **fields: Any) -> None:
        await self.set_pod_status(name, lambda pod: kubelet.succeeded(pod, result(**fields)))

    async def fail(self, name: str, reason: str = "CriteriaFailed", message: str = "") -> None:
        res = result("Failed", reason=reason, message=message or reason, exit_code=1)
        await self.set_pod_status(name, lambda pod: kubelet.failed(pod, 1, res))

    # --- waiting ---------------------------------------------------------------------------

    async def until(
        self, check: Callable[[], Any], timeout: float = 15.0, what: str = "condition"
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.describe()}")
            await asyncio.sleep(0.05)

    def describe(self) -> str:
        """What a failing wait prints: every task's phase and every Pod's."""
        lines = []
        for kind in ("TicketBatch", "AgentTask"):
            for obj in self.objects(kind):
                status = obj.get("status") or {}
                lines.append(f"{kind} {obj['metadata']['name']}: {status.get('phase')}")
        for pod in self.pods():
            lines.append(f"Pod {pod['metadata']['name']}: {(pod.get('status') or {}).get('phase')}")
        return "\n".join(lines)

    async def until_pods(self, *names: str, timeout: float = 15.0) -> None:
        await self.until(
            lambda: set(names) <= self.pod_names(), timeout, f"Pods {', '.join(names)}"
        )

    async def until_phase(self, kind: str, name: str, phase: str, timeout: float = 15.0) -> None:
        await self.until(
            lambda: self.phase(kind, name) == phase,
            timeout,
            f"{kind} {name} to be {phase} (is {self.phase(kind, name)})",
        )

    def attempt(self, run: str) -> JSON | None:
        """The attempt a task's status records for the run (Pod) named `run`."""
        for task in self.objects("AgentTask"):
            for stage in (task.get("status") or {}).get("stages", []):
                for attempt in stage.get("attempts", []):
                    if attempt.get("runName") == run:
                        return attempt
        return None

    async def until_attempt(self, run: str, phase: str, timeout: float = 15.0) -> JSON:
        def check() -> JSON | None:
            found = self.attempt(run)
            return found if found is not None and found.get("phase") == phase else None

        return await self.until(check, timeout, f"the attempt of {run} to be {phase}")

    async def settle(self, seconds: float = 0.8) -> None:
        """Let the operator act on what it has seen, for checks that nothing more happens."""
        await asyncio.sleep(seconds)
