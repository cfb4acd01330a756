"""The chart lints clean and every object it renders, in every scenario, is one Kubernetes takes.

No API server can run here: built-in kinds are checked with kubernetes-validate (strict, so an
unknown field fails), custom resources with jsonschema against the CRD the chart renders
for them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from kubernetes_validate.utils import SchemaNotFoundError

from tests.support.schemas import to_jsonschema

from .conftest import Render
from .rendering import CHART_DIR, FULLNAME, MONITORING_API, NAMESPACE, Obj, Rendered
from .scenarios import EVERYTHING_SET, SCENARIOS

K8S_VERSIONS = ("1.32", kubernetes_validate.latest_version())

# Kinds of prometheus-operator, whose CRDs are the cluster's, not the chart's: no schema here.
# test_monitoring.py checks what they point at instead.
FOREIGN_KINDS = {(MONITORING_API, "ServiceMonitor"), (MONITORING_API, "PrometheusRule")}


def crd_schemas(rendered: Rendered) -> dict[tuple[str, str], Obj]:
    """(apiVersion, kind) -> JSON Schema, for every CRD version in the render."""
    schemas = {}
    for crd in rendered.of_kind("CustomResourceDefinition"):
        spec = crd["spec"]
        for version in spec["versions"]:
            key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
            schemas[key] = to_jsonschema(version["schema"]["openAPIV3Schema"])
    return schemas


# Lint knows no API versions: one case per distinct set of values.
LINT_CASES = {name: values for name, (values, _) in SCENARIOS.items() if name != "monitoring"}


@pytest.mark.parametrize("values", LINT_CASES.values(), ids=LINT_CASES)
def test_chart_lints_without_warnings(helm: Any, values: Obj) -> None:
    report = helm.lint(CHART_DIR, values, strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    serious = [m for m in report["messages"] if m["severity"] >= 2]  # 2 warning, 3 error
    assert serious == []


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
@pytest.mark.parametrize(("values", "api_versions"), SCENARIOS.values(), ids=SCENARIOS)
def test_every_object_is_valid_for_kubernetes(
    render: Render, values: Obj, api_versions: tuple[str, ...], k8s_version: str
) -> None:
    rendered = render(values, api_versions=api_versions)
    schemas = crd_schemas(rendered)
    for obj in rendered.objects:
        key = (obj["apiVersion"], obj["kind"])
        where = f"{obj['kind']} {obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, k8s_version, strict=True)
        except SchemaNotFoundError:
            if key in FOREIGN_KINDS:
                continue
            assert key in schemas, f"{where}: a custom resource whose CRD the chart does not ship"
            errors = [e.message for e in jsonschema.Draft7Validator(schemas[key]).iter_errors(obj)]
            assert errors == [], where
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(map(str, exc.absolute_path))
            pytest.fail(f"{where}: {path}: {exc.message}")


@pytest.mark.parametrize(("values", "api_versions"), SCENARIOS.values(), ids=SCENARIOS)
def test_objects_are_named_once_and_labelled_as_the_release(
    render: Render, values: Obj, api_versions: tuple[str, ...]
) -> None:
    rendered = render(values, api_versions=api_versions)
    names = Counter(
        (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in rendered.objects
    )
    assert [n for n, count in names.items() if count > 1] == []
    for obj in rendered.objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "af", obj["metadata"]["name"]
        assert labels["app.kubernetes.io/part-of"] == "agentfleet", obj["metadata"]["name"]


def test_namespaced_objects_go_to_the_release_namespace_or_a_served_one(render: Render) -> None:
    values = {**EVERYTHING_SET, "watchNamespaces": ["team-a"], "replicaCount": 2}
    rendered = render(values, api_versions=(MONITORING_API,))
    allowed = {NAMESPACE, "team-a", "monitoring"}
    for obj in rendered.objects:
        if obj["kind"] in {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}:
            assert "namespace" not in obj["metadata"]
        else:
            assert obj["metadata"]["namespace"] in allowed, obj["kind"]


def test_default_install_renders_the_operator_and_what_it_needs(render: Render) -> None:
    rendered = render()
    assert rendered.kinds() == {
        "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
        "Deployment", "Service", "ConfigMap", "Pod",
    }  # fmt: skip
    assert rendered.one("Deployment")["metadata"]["name"] == FULLNAME


def test_notes_say_how_to_check_the_install_and_that_monitoring_is_missing(
    render: Render,
) -> None:
    without = render().notes
    assert f"helm test {FULLNAME.removesuffix('-agentfleet')} -n {NAMESPACE}" in without
    assert "no monitoring.coreos.com/v1 API" in without
    assert "no monitoring.coreos.com/v1 API" not in render(api_versions=(MONITORING_API,)).notes
