"""RBAC: exactly what the operator and kopf use, scoped to the namespaces it serves.

The expected permissions below are the brief of the operator (issue 4) and kopf's own needs;
a verb added to the chart without a reason here fails, and so does one taken away.
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
    set().union(*(grants("agentfleet.dev", kind, "get", "list", "watch") for kind in KINDS))
    | grants("agentfleet.dev", "ticketbatches", "patch")
    | grants("agentfleet.dev", "agenttasks", "create", "patch")
    | grants("agentfleet.dev", "ticketbatches/status", "patch")
    | grants("agentfleet.dev", "agenttasks/status", "patch")
    | grants("", "pods", "get", "list", "watch", "create", "patch")
    | grants("", "persistentvolumeclaims", "create", "get")
    | grants("networking.k8s.io", "networkpolicies", "create", "get")
    | grants("", "events", "create", "patch")
    | grants("events.k8s.io", "events", "create", "patch")
)
CRDS = grants("apiextensions.k8s.io", "customresourcedefinitions", "get", "list", "watch")
NAMESPACES = grants("", "namespaces", "list", "watch")
CLUSTER_PEERING = grants("kopf.dev", "clusterkopfpeerings", "get", "list", "watch", "patch")
NAMESPACED_PEERING = grants("kopf.dev", "kopfpeerings", "get", "list", "watch", "patch")


def permissions(rules: Iterable[Obj]) -> set[Permission]:
    found: set[Permission] = set()
    for rule in rules:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule  # no URLs, no names
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


def test_named_namespaces_get_a_role_each_and_only_crd_reads_cluster_wide(
    render: Render,
) -> None:
    rendered = render({"watchNamespaces": ["team-a", "team-b"]})
    assert role_permissions(rendered, "ClusterRole") == {None: CRDS}
    assert role_permissions(rendered, "Role") == {"team-a": NAMESPACED, "team-b": NAMESPACED}


def test_a_namespace_pattern_needs_the_cluster_role_and_namespace_discovery(
    render: Render,
) -> None:
    rendered = render({"watchNamespaces": ["team-a", "team-*"]})
    assert "Role" not in rendered.kinds()
    assert role_permissions(rendered, "ClusterRole") == {None: NAMESPACED | CRDS | NAMESPACES}


def test_peering_grants_the_peering_kind_of_the_operators_scope(render: Render) -> None:
    cluster = render({"replicaCount": 2})
    assert role_permissions(cluster, "ClusterRole") == {None: NAMESPACED | CRDS | CLUSTER_PEERING}

    named = render({"replicaCount": 2, "watchNamespaces": ["team-a"]})
    assert role_permissions(named, "ClusterRole") == {None: CRDS}
    assert role_permissions(named, "Role") == {"team-a": NAMESPACED | NAMESPACED_PEERING}


def test_rbac_can_be_left_to_an_admin(render: Render) -> None:
    kinds = render({"rbac": {"create": False}}).kinds()
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def test_every_granted_verb_says_why() -> None:
    """Each verb sits on its own line with a comment, in the one place rules are written."""
    helpers = (CHART_DIR / "templates" / "_helpers.tpl").read_text(encoding="utf-8")
    verb_lines = [
        line
        for line in helpers.splitlines()
        if re.match(r"\s*- (get|list|watch|create|patch)\b", line)
    ]
    assert len(verb_lines) >= len({verb for _, _, verb in NAMESPACED})
    assert [line for line in verb_lines if not re.search(r"#\s*\S", line)] == []
