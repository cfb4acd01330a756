"""RBAC: exactly what the operator and kopf use, scoped to the namespaces it serves.

The expected permissions below are written out by hand: a verb added to the chart or taken
away fails here. That they are enough is test_operator_rbac.py's job, which runs the
operator and checks the requests it really makes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pytest

from .conftest import Render
from .rendering import CHART_DIR, FULLNAME, NAMESPACE, Obj, Rendered
from .scenarios import SCENARIOS

Permission = tuple[str, str, str]  # (apiGroup, resource, verb)

KINDS = ("ticketbatches", "agenttasks", "agentconfigs", "workflows", "projects")


def grants(group: str, resource: str, *verbs: str) -> set[Permission]:
    return {(group, resource, verb) for verb in verbs}


NAMESPACED = (
    set().union(*(grants("agentfleet.dev", kind, "list", "watch") for kind in KINDS))
    | set().union(*(grants("agentfleet.dev", f"{kind}/status", "patch") for kind in KINDS))
    | grants("agentfleet.dev", "ticketbatches", "patch")
    | grants("agentfleet.dev", "agenttasks", "create", "patch")
    | grants("agentfleet.dev", "ticketbatches/finalizers", "update")
    | grants("agentfleet.dev", "agenttasks/finalizers", "update")
    | grants("", "pods", "list", "watch", "create", "patch")
    | grants("", "persistentvolumeclaims", "create", "get")
    | grants("networking.k8s.io", "networkpolicies", "create")
    | grants("", "events", "create")
)
CRDS = grants("apiextensions.k8s.io", "customresourcedefinitions", "list", "watch")
NAMESPACES = grants("", "namespaces", "list", "watch")
LEASE = grants("coordination.k8s.io", "leases", "create", "get", "patch")
LEASE_ROLE = f"{FULLNAME}-leader-election"


def permissions(rules: Iterable[Obj]) -> set[Permission]:
    found: set[Permission] = set()
    for rule in rules:
        assert set(rule) <= {"apiGroups", "resources", "verbs", "resourceNames"}, rule  # no URLs
        if "resourceNames" in rule:  # only the Lease's reads and writes are limited by name
            assert rule["resources"] == ["leases"], rule
            assert rule["resourceNames"] == [FULLNAME], rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                found |= grants(group, resource, *rule["verbs"])
    return found


def role_permissions(rendered: Rendered, kind: str) -> dict[str | None, set[Permission]]:
    """Permissions per namespace (None: cluster-wide) of every role of this kind, as bound."""
    bound = {
        (b["roleRef"]["name"], b["metadata"].get("namespace"))
        for b in rendered.of_kind(f"{kind}Binding")
        if b["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
    }
    found: dict[str | None, set[Permission]] = {}
    for role in rendered.of_kind(kind):
        namespace = role["metadata"].get("namespace")
        assert (role["metadata"]["name"], namespace) in bound, f"{kind} not bound"
        found.setdefault(namespace, set()).update(permissions(role["rules"]))
    return found


@pytest.mark.parametrize(("values", "api_versions"), SCENARIOS.values(), ids=SCENARIOS)
def test_no_wildcard_no_secrets_no_delete_no_escalation(
    render: Render, values: Obj, api_versions: tuple[str, ...]
) -> None:
    rendered = render(values, api_versions=api_versions)
    for role in rendered.of_kind("ClusterRole") + rendered.of_kind("Role"):
        for group, resource, verb in permissions(role["rules"]):
            assert "*" not in (group, resource, verb)
            assert resource not in {"secrets", "serviceaccounts/token", "pods/exec"}
            assert verb not in {"delete", "deletecollection", "escalate", "bind", "impersonate"}


def test_serving_every_namespace_is_one_cluster_role(render: Render) -> None:
    rendered = render()
    assert "Role" not in rendered.kinds()
    assert role_permissions(rendered, "ClusterRole") == {None: NAMESPACED | CRDS}


def test_named_namespaces_get_a_role_each_and_only_discovery_reads_cluster_wide(
    render: Render,
) -> None:
    rendered = render({"watchNamespaces": ["team-a", "team-b"]})
    # Namespace discovery: kopf lists and watches namespaces whenever it is given some.
    assert role_permissions(rendered, "ClusterRole") == {None: CRDS | NAMESPACES}
    assert role_permissions(rendered, "Role") == {"team-a": NAMESPACED, "team-b": NAMESPACED}


def test_a_namespace_pattern_needs_the_cluster_role_and_namespace_discovery(
    render: Render,
) -> None:
    for patterns in (["team-a", "team-*"], ["team-*,!team-x"], ["!team-x"]):
        rendered = render({"watchNamespaces": patterns})
        assert "Role" not in rendered.kinds()
        assert role_permissions(rendered, "ClusterRole") == {None: NAMESPACED | CRDS | NAMESPACES}


@pytest.mark.parametrize(
    "values",
    [{"replicaCount": 2}, {"leaderElection": {"enabled": True}}],
    ids=["two-replicas", "asked-for"],
)
def test_leader_election_gets_its_lease_in_the_release_namespace_only(
    render: Render, values: Obj
) -> None:
    cluster = render(values)
    assert role_permissions(cluster, "ClusterRole") == {None: NAMESPACED | CRDS}
    assert role_permissions(cluster, "Role") == {NAMESPACE: LEASE}
    [role] = cluster.of_kind("Role")
    assert role["metadata"]["name"] == LEASE_ROLE
    by_name = {v for r in role["rules"] if r.get("resourceNames") == [FULLNAME] for v in r["verbs"]}
    assert by_name == {"get", "patch"}  # all but create, which no name can limit

    named = render({**values, "watchNamespaces": ["team-a", NAMESPACE]})
    assert role_permissions(named, "ClusterRole") == {None: CRDS | NAMESPACES}
    # The release namespace served too: its Role and the Lease's stay apart.
    assert role_permissions(named, "Role") == {"team-a": NAMESPACED, NAMESPACE: NAMESPACED | LEASE}
    assert {r["metadata"]["name"] for r in named.of_kind("Role")} == {FULLNAME, LEASE_ROLE}


def test_no_lease_and_no_kopf_peering_without_leader_election(render: Render) -> None:
    for values, api_versions in SCENARIOS.values():
        rendered = render(values, api_versions=api_versions)
        granted = set().union(
            *(
                permissions(r["rules"])
                for r in rendered.of_kind("ClusterRole") + rendered.of_kind("Role")
            )
        )
        assert not {g for g, _, _ in granted} & {"kopf.dev", "events.k8s.io"}
        elected = values.get("replicaCount", 1) > 1 or values.get("leaderElection")
        assert bool(granted & LEASE) == bool(elected)


def test_rbac_can_be_left_to_an_admin(render: Render) -> None:
    kinds = render({"rbac": {"create": False}}).kinds()
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def test_every_granted_verb_says_why() -> None:
    """Each verb sits on its own line with a comment, in the one place rules are written."""
    helpers = (CHART_DIR / "templates" / "_helpers.tpl").read_text(encoding="utf-8")
    verb_lines = [
        line
        for line in helpers.splitlines()
        if re.match(r"\s*- (get|list|watch|create|patch|update)\b", line)
    ]
    assert len(verb_lines) >= len({verb for _, _, verb in NAMESPACED})
    assert [line for line in verb_lines if not re.search(r"#\s*\S", line)] == []
