"""The operator Deployment: the command line the operator is built for, probes, and a Pod the
restricted Pod Security Standard admits."""

from __future__ import annotations

import json
from typing import Any

from tests.support.pod_security import restricted_violations

from .conftest import Render
from .rendering import FULLNAME, NAMESPACE, Obj
from .scenarios import EVERYTHING_SET, SCENARIOS


def operator_container(rendered: Any) -> Obj:
    [container] = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def pod_of(deployment: Obj) -> Obj:
    return {
        "metadata": deployment["spec"]["template"]["metadata"],
        **deployment["spec"]["template"],
    }


def test_operator_runs_with_the_default_flags(render: Render) -> None:
    container = operator_container(render())
    assert container["image"] == "ghcr.io/agentfleet/operator:0.1.0"
    assert container["command"] == ["agentfleet", "operator"]
    assert container["args"] == [
        "--qps=50",
        "--burst=100",
        "--liveness=http://0.0.0.0:8080/healthz",
        "--metrics-port=9090",
        "--runner-image=ghcr.io/agentfleet/runner:0.1.0",
        "--image-pull-grace-seconds=120",
        "--workspace-size=10Gi",
        "--workspace-access-mode=ReadWriteOnce",
    ]


def test_every_value_reaches_its_flag(render: Render) -> None:
    container = operator_container(render(EVERYTHING_SET))
    assert container["image"] == "registry.example/agentfleet/operator:9.9.9"
    assert container["args"] == [
        "--qps=12.5",
        "--burst=30",
        "--liveness=http://0.0.0.0:8080/healthz",
        "--metrics-port=9090",
        "--runner-image=registry.example/agentfleet/runner-claude-code:1.2.3",
        "--image-pull-policy=Always",
        "--image-pull-grace-seconds=300",
        "--workspace-storage-class=fast",
        "--workspace-size=50Gi",
        "--workspace-access-mode=ReadWriteMany",
        "--retain-workspaces",
        "--run-service-account=agent-runner",
        "--run-image-pull-secret=registry-a",
        "--run-image-pull-secret=registry-b",
        "--run-node-selector=agentfleet.dev/pool=agents",
        "--run-node-selector=kubernetes.io/arch=amd64",
        "--run-tolerations="
        '[{"effect":"NoSchedule","key":"dedicated","operator":"Equal","value":"agents"},'
        '{"key":"spot","operator":"Exists"}]',
        "--image-pull-grace-seconds=600",
    ]


def test_run_pod_tolerations_are_one_flag_of_json_that_survives_yaml(render: Render) -> None:
    """Quotes, spaces, colons and non-ASCII in a toleration reach the operator unchanged."""
    tolerations = [
        {"key": 'odd "key"', "operator": "Equal", "value": "a: b, c ü", "effect": "NoExecute"},
        {"operator": "Exists", "tolerationSeconds": 30},
    ]
    args = operator_container(render({"runner": {"tolerations": tolerations}}))["args"]
    [flag] = [a for a in args if a.startswith("--run-tolerations=")]
    assert json.loads(flag.removeprefix("--run-tolerations=")) == tolerations


def test_run_pod_flags_are_absent_by_default(render: Render) -> None:
    args = operator_container(render())["args"]
    assert [a for a in args if a.startswith("--run-")] == []


def test_each_served_namespace_is_one_namespace_flag(render: Render) -> None:
    args = operator_container(render({"watchNamespaces": ["team-a", "team-*"]}))["args"]
    assert [a for a in args if a.startswith("--namespace")] == [
        "--namespace=team-a",
        "--namespace=team-*",
    ]


def env_of(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container.get("env", [])}


def test_leader_election_is_on_above_one_replica_or_when_asked(render: Render) -> None:
    single = render()
    assert not any(a.startswith("--leader-election") for a in operator_container(single)["args"])
    assert single.one("Deployment")["spec"]["strategy"] == {"type": "Recreate"}

    for values in ({"replicaCount": 2}, {"leaderElection": {"enabled": True}}):
        rendered = render(values)
        assert f"--leader-election={FULLNAME}" in operator_container(rendered)["args"]
        assert rendered.one("Deployment")["spec"]["strategy"] == {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        }
    # Two replicas without an election would both write: enabled: false cannot turn it off.
    forced = render({"replicaCount": 2, "leaderElection": {"enabled": False}})
    assert f"--leader-election={FULLNAME}" in operator_container(forced)["args"]
    assert forced.one("Deployment")["spec"]["replicas"] == 2
    assert not any(a.startswith("--peering") for a in operator_container(forced)["args"])


def test_the_pod_knows_its_namespace_where_the_lease_lives(render: Render) -> None:
    for values in ({}, {"replicaCount": 2}):
        env = env_of(operator_container(render(values)))
        assert env["POD_NAMESPACE"] == {
            "name": "POD_NAMESPACE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        }


def test_probes_ask_kopfs_liveness_endpoint_on_the_port_the_operator_listens_on(
    render: Render,
) -> None:
    container = operator_container(render({"operator": {"livenessPort": 8181}}))
    assert "--liveness=http://0.0.0.0:8181/healthz" in container["args"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"liveness": 8181, "metrics": 9090}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "liveness"}


def test_operator_pod_passes_the_restricted_pod_security_standard(render: Render) -> None:
    for values, api_versions in SCENARIOS.values():
        deployment = render(values, api_versions=api_versions).one("Deployment")
        assert restricted_violations(pod_of(deployment)) == []


def test_operator_runs_as_uid_1000_on_a_read_only_root_with_a_writable_tmp(
    render: Render,
) -> None:
    deployment = render().one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = operator_container(render())
    assert pod["securityContext"]["runAsUser"] == 1000
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"][0]["name"] == "tmp"
    assert "emptyDir" in pod["volumes"][0]
    assert container["resources"]["limits"]["memory"] == "512Mi"


def test_operator_runs_as_its_service_account(render: Render) -> None:
    rendered = render()
    account = rendered.one("ServiceAccount")
    assert account["metadata"] == {**account["metadata"], "name": FULLNAME, "namespace": NAMESPACE}
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == FULLNAME
    assert pod.get("automountServiceAccountToken", True) is True  # it talks to the API


def test_an_existing_service_account_can_be_named_instead(render: Render) -> None:
    rendered = render({"serviceAccount": {"create": False, "name": "ops-robot"}})
    assert "ServiceAccount" not in rendered.kinds()
    assert rendered.one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == (
        "ops-robot"
    )
    [binding] = rendered.of_kind("ClusterRoleBinding")
    assert binding["subjects"][0]["name"] == "ops-robot"


def test_service_selects_the_operator_pods_and_exposes_metrics_and_liveness(
    render: Render,
) -> None:
    rendered = render()
    service = rendered.one("Service")
    pod_labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports == {"metrics": (9090, "metrics"), "liveness": (8080, "liveness")}


def test_the_operator_cli_accepts_every_flag_the_chart_passes(render: Render) -> None:
    """Parsed by the real `agentfleet operator` command (not run): names, types, repeats."""
    import typer.main

    from agentfleet.cli import app

    command = typer.main.get_command(app).commands["operator"]
    values = {
        **EVERYTHING_SET,
        "watchNamespaces": ["team-a", "team-b"],
        "replicaCount": 2,
    }
    args = operator_container(render(values))["args"]
    parsed = command.make_context("operator", list(args)).params
    by_flag = {opt: parsed[param.name] for param in command.params for opt in param.opts}
    assert by_flag["--namespace"] == ["team-a", "team-b"]
    assert by_flag["--leader-election"] == FULLNAME
    assert by_flag["--qps"] == 12.5
    assert by_flag["--retain-workspaces"] is True
    assert by_flag["--workspace-access-mode"] == "ReadWriteMany"
    assert by_flag["--image-pull-grace-seconds"] == 600  # extraArgs come last, and win
    assert by_flag["--run-service-account"] == "agent-runner"
    assert list(by_flag["--run-image-pull-secret"]) == ["registry-a", "registry-b"]
    assert list(by_flag["--run-node-selector"]) == [
        "agentfleet.dev/pool=agents",
        "kubernetes.io/arch=amd64",
    ]
    assert json.loads(by_flag["--run-tolerations"]) == EVERYTHING_SET["runner"]["tolerations"]
