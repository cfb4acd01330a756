"""The chart's RBAC grants every request the real operator makes, and no verb it never uses.

test_rbac.py compares the rendered rules with a list written by hand; that list could be as
wrong as the chart. Here the operator runs for real against the filled-in emulator, through
scenarios that make it take each of its paths (runs started, succeeded, failed, retried,
approved, aborted; a network-isolated agent; an invalid batch; a workspace claim that
already exists; leader election), and every request it sends is recorded: the operator's
own client (wrapped before it starts) and kopf's (by its User-Agent, in the emulator's log).
Each request becomes what an API server's authorizer sees, (verb, group, resource,
subresource, namespace, name), and must be allowed by the rendered (Cluster)Roles as bound
to the operator's ServiceAccount, in the rendering that matches how the operator ran: every
namespace, or named namespaces.

The check is shown to bite: with any one verb taken out of the rendered rules, some
recorded request is refused, except for the few verbs granted for what no request shows
(UNUSED_BY_DESIGN, each with its reason).
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import pytest
import pytest_asyncio

from agentfleet.operator.main import Operator
from agentfleet.operator.settings import OperatorSettings
from tests.operator import manifests as m
from tests.operator.harness import NAMESPACE as SERVED
from tests.operator.harness import Cluster
from tests.support import kubelet
from tests.support.emulator import serve_emulator

from .conftest import Render
from .rendering import FULLNAME, NAMESPACE, Obj

SERVICE_ACCOUNT = {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
ACTION = "agentfleet.dev/action"
KINDS = ("ticketbatches", "agenttasks", "agentconfigs", "workflows", "projects")


@dataclass(frozen=True, order=True)
class Access:
    """One request as RBAC sees it; namespace None: cluster-scoped or across namespaces."""

    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str | None
    name: str | None

    @property
    def resource_path(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    def __str__(self) -> str:
        named = f" {self.name}" if self.name else ""
        where = f" in {self.namespace}" if self.namespace else " cluster-wide"
        return f"{self.verb} {self.group or 'core'}/{self.resource_path}{named}{where}"


def access_of(
    method: str, path: str, query: Mapping[str, str] | str | None = None
) -> Access | None:
    """What the authorizer sees of a request; None for discovery (non-resource URLs, which
    every authenticated client may read through the built-in system:discovery role)."""
    if isinstance(query, str):
        query = {key: values[-1] for key, values in parse_qs(query).items()}
    query = query or {}
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return None
    if not rest:
        return None  # /api/v1, /apis/GROUP/VERSION: discovery
    namespace = None
    if rest[0] == "namespaces" and len(rest) > 2:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else ""
    if resource == "namespaces" and name is not None:
        namespace = name  # a Namespace is in its own namespace, to the authorizer
    method = method.upper()
    if method == "GET":
        watching = str(query.get("watch", "")).lower() in {"true", "1"}
        verb = "watch" if watching else ("get" if name else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}[method]
    return Access(verb, group, resource, subresource, namespace, name)


NS = "/namespaces/a"
REQUESTS = [
    ("GET", f"/api/v1{NS}/pods", {"labelSelector": "x"}, "list core/pods in a"),
    ("GET", "/api/v1/pods", "watch=true&resourceVersion=5", "watch core/pods cluster-wide"),
    ("GET", f"/api/v1{NS}/persistentvolumeclaims/w", None,
     "get core/persistentvolumeclaims w in a"),
    ("POST", f"/apis/networking.k8s.io/v1{NS}/networkpolicies", None,
     "create networking.k8s.io/networkpolicies in a"),
    ("PATCH", f"/apis/agentfleet.dev/v1{NS}/agenttasks/t/status", None,
     "patch agentfleet.dev/agenttasks/status t in a"),
    ("PUT", f"/apis/coordination.k8s.io/v1{NS}/leases/l", None,
     "update coordination.k8s.io/leases l in a"),
    ("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", "watch=1",
     "watch apiextensions.k8s.io/customresourcedefinitions cluster-wide"),
    ("GET", "/apis/agentfleet.dev/v1/ticketbatches", None,
     "list agentfleet.dev/ticketbatches cluster-wide"),
    ("GET", "/api/v1/namespaces", {"watch": "true"}, "watch core/namespaces cluster-wide"),
    ("GET", "/api/v1/namespaces/a", None, "get core/namespaces a in a"),
    ("DELETE", f"/api/v1{NS}/pods/p", None, "delete core/pods p in a"),
    ("DELETE", f"/api/v1{NS}/pods", None, "deletecollection core/pods in a"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "query", "expected"), REQUESTS)
def test_a_request_maps_to_what_rbac_checks(
    method: str, path: str, query: Any, expected: str
) -> None:
    assert str(access_of(method, path, query)) == expected


@pytest.mark.parametrize(
    "path", ["/api", "/api/v1", "/apis", "/apis/agentfleet.dev/v1", "/version"]
)
def test_discovery_is_no_resource_request(path: str) -> None:
    assert access_of("GET", path) is None


# --- the rendered rules, as the authorizer applies them ---------------------------------------


def rule_allows(rule: Obj, access: Access) -> bool:
    def has(values: Iterable[str], value: str) -> bool:
        return "*" in values or value in values

    names = rule.get("resourceNames") or []
    return (
        has(rule["apiGroups"], access.group)
        and has(rule["resources"], access.resource_path)
        and has(rule["verbs"], access.verb)
        and (not names or access.name in names)  # a create or a list has no name to match
    )


def bound_rules(objects: list[Obj]) -> Iterator[tuple[str | None, Obj]]:
    """(the namespace a grant is limited to, None for none; rule) of every rule bound to the
    operator's ServiceAccount."""
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}
    for binding in objects:
        if binding["kind"] not in {"ClusterRoleBinding", "RoleBinding"}:
            continue
        if SERVICE_ACCOUNT not in binding["subjects"]:
            continue
        where = binding["metadata"].get("namespace")  # None for a ClusterRoleBinding
        ref = binding["roleRef"]
        role = roles.get((ref["kind"], where if ref["kind"] == "Role" else None, ref["name"]))
        assert role is not None, f"{binding['kind']} {binding['metadata']['name']}: no role"
        for rule in role["rules"]:
            yield where, rule


def allowed(objects: list[Obj], access: Access) -> bool:
    return any(
        rule_allows(rule, access)
        for where, rule in bound_rules(objects)
        if where is None or where == access.namespace
    )


def refused(objects: list[Obj], accesses: Iterable[Access]) -> list[str]:
    return sorted({str(a) for a in accesses if not allowed(objects, a)})


def granted_verbs(objects: list[Obj]) -> Iterator[tuple[int, int, str]]:
    """(object index, rule index, verb) of every verb of every (Cluster)Role."""
    for index, obj in enumerate(objects):
        if obj["kind"] in {"ClusterRole", "Role"}:
            for number, rule in enumerate(obj["rules"]):
                for verb in rule["verbs"]:
                    yield index, number, verb


def without_verb(objects: list[Obj], index: int, number: int, verb: str) -> list[Obj]:
    changed = copy.deepcopy(objects)
    rules = changed[index]["rules"]
    rules[number]["verbs"] = [v for v in rules[number]["verbs"] if v != verb]
    if not rules[number]["verbs"]:
        del rules[number]
    return changed


def grant_of(rule: Obj, verb: str) -> set[tuple[str, str, str]]:
    return {(g, r, verb) for g in rule["apiGroups"] for r in rule["resources"]}


# Granted though no request shows them, each for its reason.
UNUSED_BY_DESIGN = {
    # OwnerReferencesPermissionEnforcement (OpenShift): an AgentTask, Pod, claim or
    # NetworkPolicy with blockOwnerDeletion needs update on its owner's finalizers. The
    # admission plugin checks it on the child's create; it is never a request of its own.
    ("agentfleet.dev", "ticketbatches/finalizers", "update"),
    ("agentfleet.dev", "agenttasks/finalizers", "update"),
}


def test_taking_a_rule_away_refuses_a_request(render: Render) -> None:
    """The check itself, on a known request: it fails when the one rule allowing it goes."""
    objects = render({"replicaCount": 2}).objects
    status = access_of("PATCH", f"/apis/agentfleet.dev/v1{NS}/workflows/w/status")
    lease = access_of("PATCH", f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/x")
    assert status is not None
    assert lease is not None
    assert refused(objects, [status]) == []
    assert refused(objects, [lease]) == [str(lease)]  # only the release's own Lease
    [(index, number)] = [
        (i, n)
        for i, n, verb in granted_verbs(objects)
        if ("agentfleet.dev", "workflows/status", "patch") in grant_of(objects[i]["rules"][n], verb)
    ]
    assert refused(without_verb(objects, index, number, "patch"), [status]) == [str(status)]
    # A Role binds in its own namespace only.
    elsewhere = access_of(
        "GET", "/apis/coordination.k8s.io/v1/namespaces/team-a/leases/" + FULLNAME
    )
    assert elsewhere is not None
    assert refused(objects, [elsewhere]) == [str(elsewhere)]


# --- running the operator ---------------------------------------------------------------------


@dataclass
class Recording:
    operator: list[Access]
    kopf: list[Access]
    kopf_watched: list[tuple[str, str]]
    """(group, plural) of every resource the operator's kopf handlers watch."""

    def all(self, served: tuple[str, ...]) -> set[Access]:
        """Everything that must be allowed: what was seen, and kopf's list and watch of each
        handler's resource in each served namespace (or across all of them), whether or not
        the emulator's log caught kopf making them."""
        namespaces: tuple[str | None, ...] = served or (None,)
        explicit = {
            Access(verb, group, plural, "", namespace, None)
            for group, plural in self.kopf_watched
            for verb in ("list", "watch")
            for namespace in namespaces
        }
        return set(self.operator) | set(self.kopf) | explicit


def isolated_agent() -> Obj:
    return m.agent(
        "dev",
        "Development",
        environmentRequirements={
            "resourceLimits": {"memoryMb": 512},
            "networkIsolation": {"enabled": True, "allowedEgress": ["10.0.0.0/8"]},
        },
    )


def annotations(obj: Obj | None) -> dict[str, str]:
    return ((obj or {}).get("metadata") or {}).get("annotations") or {}


async def scenarios(cluster: Cluster) -> None:
    """Every kind of write the operator has; each step waits for the operator's answer."""
    # A claim already there (as a retained workspace is): the create answers 409 and the
    # operator reads the claim to see whose it is.
    cluster.emu.write_object(
        "persistentvolumeclaims",
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "b1-workspace", "namespace": SERVED},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "10Gi"}},
            },
        },
    )
    configs = [
        m.project(),
        isolated_agent(),
        m.agent("qa", "QualityAssurance"),
        m.workflow("EscalateToHuman", qa_approvals=1),
    ]
    await cluster.apply(
        *configs,
        m.batch("b1", [m.ticket("ok"), m.ticket("bad")]),
        m.batch("b2", [m.ticket("slow")]),
        m.batch("cyclic", [m.ticket("a", "b"), m.ticket("b", "a")]),
    )
    await cluster.until_phase("TicketBatch", "cyclic", "Failed")  # InvalidSpec, and an Event
    await cluster.until_pods("b1-ok-develop-1", "b1-bad-develop-1", "b2-slow-develop-1")
    for kind, name in (
        ("AgentConfig", "dev"),
        ("Workflow", "develop-then-qa"),
        ("Project", "shop"),
    ):
        await cluster.until(lambda k=kind, n=name: cluster.phase(k, n), what=f"{kind} status")

    # Success, then an approval: a one-shot annotation the operator clears.
    await cluster.succeed("b1-ok-develop-1")
    await cluster.until_pods("b1-ok-qa-1")
    await cluster.succeed("b1-ok-qa-1")
    await cluster.until_phase("AgentTask", "b1-ok", "AwaitingApproval")
    await cluster.annotate("AgentTask", "b1-ok", "agentfleet.dev/approve-qa", "alice")
    await cluster.until_phase("AgentTask", "b1-ok", "Succeeded")

    # Failure, escalation, a retry: another one-shot annotation.
    await cluster.fail("b1-bad-develop-1")
    await cluster.until_phase("AgentTask", "b1-bad", "Escalated")
    await cluster.annotate("AgentTask", "b1-bad", ACTION, "retry")
    await cluster.until_pods("b1-bad-develop-2")

    # Abort a batch: its running Pod is stopped (a patch) and the annotation cleared.
    await cluster.set_pod_status("b2-slow-develop-1", kubelet.running)
    await cluster.annotate("TicketBatch", "b2", ACTION, "abort")
    await cluster.until(
        lambda: (
            "agentfleet.dev/stop-reason" in annotations(cluster.get("pods", "b2-slow-develop-1"))
        ),
        what="the aborted batch's Pod to be stopped",
    )
    await cluster.until(
        lambda: ACTION not in annotations(cluster.get("TicketBatch", "b2")),
        what="the abort annotation to be cleared",
    )
    await cluster.set_pod_status("b2-slow-develop-1", kubelet.deadline_exceeded)
    await cluster.until_phase("TicketBatch", "b2", "Failed")


def kopf_selectors(operator: Operator) -> list[tuple[str, str]]:
    """(group, plural) of what the operator's kopf handlers watch, from its registry."""
    registry = operator.registry
    found = set()
    for part in (registry._watching, registry._changing, registry._spawning, registry._indexing):
        for selector in part.get_all_selectors():
            plural = selector.plural or selector.any_name  # the handlers name their plurals
            assert isinstance(plural, str), selector
            found.add((selector.group or "", plural))
    return sorted(found)


def is_kopf(headers: Mapping[str, str]) -> bool:
    agent = {key.lower(): value for key, value in headers.items()}.get("user-agent", "")
    return agent.startswith("kopf/")


async def record(served: tuple[str, ...]) -> Recording:
    """Run the operator, as the chart runs it, through the scenarios; return its requests."""
    async with serve_emulator() as emu:
        cluster = Cluster(emu)
        cluster.add_namespace(NAMESPACE)  # the release namespace, where the Lease lives
        settings = OperatorSettings(
            namespaces=served,
            liveness="",
            metrics_port=0,
            resync_seconds=0.5,
            leader_election=FULLNAME,
            leader_election_namespace=NAMESPACE,
        )
        seen: list[Access] = []
        lock = threading.Lock()
        watched: list[tuple[str, str]] = []

        def prepare(operator: Operator) -> None:
            watched.extend(kopf_selectors(operator))
            # The reconciler's client, and the leader election's own one.
            clients = [operator.api]
            if operator.reconciler.leader is not None:
                clients.append(operator.reconciler.leader.api)
            for client in clients:
                request = client.request

                def recording(
                    method: str,
                    path: str,
                    body: Any = None,
                    *,
                    _real: Any = request,
                    **options: Any,
                ) -> Any:
                    access = access_of(method, path, options.get("query"))
                    if access is not None:
                        with lock:
                            seen.append(access)
                    return _real(method, path, body, **options)

                client.request = recording  # type: ignore[method-assign]

        try:
            running = await cluster.start_operator(settings, prepare=prepare)
            try:
                await scenarios(cluster)
            finally:
                await asyncio.to_thread(running.stop)  # a clean stop releases the Lease
            kopf = [
                access
                for request in emu
                if is_kopf(request.headers)
                and (
                    access := access_of(
                        request.method.value, request.url.path, request.url.query_string
                    )
                )
                is not None
            ]
        finally:
            cluster.close()
    with lock:
        return Recording(list(seen), kopf, watched)


MODES = {
    # how the operator runs: its namespaces, and the chart values that make it run so
    "all-namespaces": ((), {}),
    "named-namespaces": ((SERVED,), {"watchNamespaces": [SERVED]}),
}


@pytest_asyncio.fixture(params=list(MODES))
async def recorded(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, Recording]]:
    served, _ = MODES[request.param]
    yield request.param, await record(served)


@pytest.mark.asyncio
async def test_the_chart_grants_every_request_the_operator_makes_and_no_verb_it_never_uses(
    render: Render, recorded: tuple[str, Recording]
) -> None:
    mode, recording = recorded
    served, values = MODES[mode]
    # kopf lists and watches Namespaces whenever it is given namespaces, plain names included
    # (kopf/_core/reactor/observation.py): the recording has them, and the chart grants them.
    accesses = recording.all(served)

    # The scenarios reached every kind of write, or the check below would prove little.
    made = {(a.verb, a.group, a.resource_path) for a in recording.operator}
    for needed in [
        *(("patch", "agentfleet.dev", f"{plural}/status") for plural in KINDS),
        ("create", "agentfleet.dev", "agenttasks"),
        ("patch", "agentfleet.dev", "agenttasks"),
        ("patch", "agentfleet.dev", "ticketbatches"),
        ("create", "", "pods"),
        ("patch", "", "pods"),
        ("create", "", "persistentvolumeclaims"),
        ("get", "", "persistentvolumeclaims"),
        ("create", "networking.k8s.io", "networkpolicies"),
        ("create", "", "events"),
        ("create", "coordination.k8s.io", "leases"),
        ("patch", "coordination.k8s.io", "leases"),
    ]:
        assert needed in made, f"the scenarios never made the operator {needed}"
    assert {a.resource for a in recording.kopf if a.verb == "watch"} >= {"pods", *KINDS}

    # With leader election (replicaCount > 1) all of it is granted; with one replica, all
    # but the Lease, which the operator then never touches.
    elected = render({**values, "replicaCount": 2}).objects
    assert refused(elected, accesses) == []
    single = render(values).objects
    assert refused(single, {a for a in accesses if a.resource != "leases"}) == []
    assert refused(single, {a for a in accesses if a.resource == "leases"}) != []

    # Take any one verb away and some request is refused, unless nothing is meant to use it.
    unused: set[tuple[str, str, str]] = set()
    for index, number, verb in granted_verbs(elected):
        if not refused(without_verb(elected, index, number, verb), accesses):
            unused |= grant_of(elected[index]["rules"][number], verb)
    assert unused == UNUSED_BY_DESIGN
