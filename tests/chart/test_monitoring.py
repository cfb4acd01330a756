"""Metrics, alerts and dashboards: rendered only where they can work, and querying only the
metrics the operator defines."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.support.pod_security import restricted_violations

from .conftest import Render
from .rendering import CHART_DIR, FULLNAME, MONITORING_API, NAMESPACE, Obj

# The operator's metrics, as src/agentfleet/metrics.py defines them: name -> type.
EXPECTED_METRICS = {
    "agentfleet_batches": "gauge",
    "agentfleet_tasks": "gauge",
    "agentfleet_runs_started_total": "counter",
    "agentfleet_runs_finished_total": "counter",
    "agentfleet_run_duration_seconds": "histogram",
    "agentfleet_reconcile_duration_seconds": "histogram",
    "agentfleet_kubernetes_requests_total": "counter",
}
SERIES_SUFFIXES = {"gauge": ("",), "counter": ("",), "histogram": ("_bucket", "_sum", "_count")}
SERIES = {
    name + suffix: name
    for name, kind in EXPECTED_METRICS.items()
    for suffix in SERIES_SUFFIXES[kind]
}
METRIC_NAME = re.compile(r"\bagentfleet_[a-z0-9_]+")
DASHBOARDS = sorted((CHART_DIR / "files" / "dashboards").glob("*.json"))


def dashboard_queries(dashboard: Obj) -> list[str]:
    """Every PromQL expression of a dashboard: panel targets and templating queries."""
    queries = []
    for panel in dashboard["panels"]:
        queries += [target["expr"] for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            queries.append(variable["definition"])
    return queries


def used_series(expressions: list[str]) -> set[str]:
    return {name for expr in expressions for name in METRIC_NAME.findall(expr)}


def alert_expressions(rule: Obj) -> list[str]:
    return [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]


# --- dashboards, read from the files --------------------------------------------------------


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_dashboard_queries_only_metrics_the_operator_defines(path: Any) -> None:
    queries = dashboard_queries(json.loads(path.read_text(encoding="utf-8")))
    assert queries
    assert used_series(queries) - set(SERIES) == set()


def test_operator_dashboard_shows_every_metric() -> None:
    dashboard = json.loads((CHART_DIR / "files" / "dashboards" / "operator.json").read_text())
    shown = {SERIES[s] for s in used_series(dashboard_queries(dashboard))}
    assert shown == set(EXPECTED_METRICS)


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_dashboard_is_importable_into_any_prometheus_datasource(path: Any) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    assert dashboard["uid"]
    assert dashboard["title"]
    assert "id" not in dashboard  # an id would clash with the Grafana it is imported into
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], panel["title"]


# --- rendered ---------------------------------------------------------------------------------


def test_prometheus_operator_objects_need_its_api_in_the_cluster(render: Render) -> None:
    assert not {"ServiceMonitor", "PrometheusRule"} & render().kinds()
    assert {"ServiceMonitor", "PrometheusRule"} <= render(api_versions=(MONITORING_API,)).kinds()


@pytest.mark.parametrize("turned_off", ["serviceMonitor", "prometheusRule"])
def test_each_prometheus_operator_object_can_be_turned_off(render: Render, turned_off: str) -> None:
    values = {"metrics": {turned_off: {"enabled": False}}}
    kinds = render(values, api_versions=(MONITORING_API,)).kinds()
    kind = turned_off[0].upper() + turned_off[1:]
    assert kind not in kinds
    assert ({"ServiceMonitor", "PrometheusRule"} - {kind}) <= kinds


def test_service_monitor_scrapes_the_operator_services_metrics_port(render: Render) -> None:
    rendered = render(
        {"metrics": {"serviceMonitor": {"labels": {"release": "prom"}}}},
        api_versions=(MONITORING_API,),
    )
    monitor = rendered.one("ServiceMonitor")
    service = rendered.one("Service")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}


def test_alerts_query_only_metrics_the_operator_defines_and_its_scrape_job(
    render: Render,
) -> None:
    rule = render(api_versions=(MONITORING_API,)).one("PrometheusRule")
    expressions = alert_expressions(rule)
    assert used_series(expressions) - set(SERIES) == set()
    for expr in expressions:
        assert f'job="{FULLNAME}", namespace="{NAMESPACE}"' in expr


def test_alerts_are_few_and_say_what_broke(render: Render) -> None:
    rule = render(
        {"metrics": {"prometheusRule": {"runFailureRatio": 0.25, "tasksStalledFor": "1h"}}},
        api_versions=(MONITORING_API,),
    ).one("PrometheusRule")
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert set(alerts) == {
        "AgentfleetOperatorDown",
        "AgentfleetRunFailureRateHigh",
        "AgentfleetTasksStalled",
    }
    assert alerts["AgentfleetOperatorDown"]["expr"].startswith("absent(up{")
    assert alerts["AgentfleetRunFailureRateHigh"]["expr"].endswith("> 0.25")
    assert alerts["AgentfleetTasksStalled"]["for"] == "1h"
    for alert in alerts.values():
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert alert["annotations"]["summary"]
        assert alert["annotations"]["description"]
    # Prometheus's own templates reach Prometheus untouched by Helm's
    summary = alerts["AgentfleetRunFailureRateHigh"]["annotations"]["summary"]
    assert summary == "Many {{ $labels.agent_type }} runs fail."


def test_each_dashboard_is_a_configmap_the_grafana_sidecar_finds(render: Render) -> None:
    values = {"dashboards": {"labelKey": "grafana_dashboard_team", "labelValue": "ops"}}
    maps = render(values).of_kind("ConfigMap")
    assert len(maps) == len(DASHBOARDS)
    maps.sort(key=lambda m: m["metadata"]["name"])
    for path, config_map in zip(DASHBOARDS, maps, strict=True):
        assert config_map["metadata"]["labels"]["grafana_dashboard_team"] == "ops"
        assert json.loads(config_map["data"][path.name]) == json.loads(path.read_text())
    assert render({"dashboards": {"enabled": False}}).of_kind("ConfigMap") == []


def test_helm_test_pod_checks_liveness_and_metrics_through_the_service(render: Render) -> None:
    rendered = render({"operator": {"livenessPort": 8181, "metricsPort": 9191}})
    pod = rendered.one("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    service = f"{FULLNAME}.{NAMESPACE}.svc"
    script = " ".join(pod["spec"]["containers"][0]["command"])
    assert f"http://{service}:8181/healthz" in script
    assert f"http://{service}:9191/metrics" in script
    assert restricted_violations(pod) == []
    assert pod["spec"]["automountServiceAccountToken"] is False
