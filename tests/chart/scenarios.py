"""Value sets the chart is rendered with, each a way people install it."""

from __future__ import annotations

from typing import Any

from .rendering import MONITORING_API

Scenario = tuple[dict[str, Any], tuple[str, ...]]

EVERYTHING_SET: dict[str, Any] = {
    "image": {"repository": "registry.example/agentfleet/operator", "tag": "9.9.9"},
    "imagePullSecrets": ["pull-secret"],
    "operator": {"qps": 12.5, "burst": 30, "extraArgs": ["--image-pull-grace-seconds=600"]},
    "runner": {
        "image": {"repository": "registry.example/agentfleet/runner-claude-code", "tag": "1.2.3"},
        "imagePullPolicy": "Always",
        "imagePullGraceSeconds": 300,
        "serviceAccountName": "agent-runner",
        "imagePullSecrets": ["registry-a", "registry-b"],
        "nodeSelector": {"agentfleet.dev/pool": "agents", "kubernetes.io/arch": "amd64"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "agents", "effect": "NoSchedule"},
            {"key": "spot", "operator": "Exists"},
        ],
    },
    "workspace": {
        "storageClass": "fast",
        "size": "50Gi",
        "accessMode": "ReadWriteMany",
        "retain": True,
    },
    "serviceAccount": {"annotations": {"iam.example/role": "agentfleet"}},
    "podAnnotations": {"example/annotated": "yes"},
    "podLabels": {"team": "platform"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["ops"]}]}
                ]
            }
        }
    },
    "priorityClassName": "system-cluster-critical",
    "metrics": {
        "serviceMonitor": {"labels": {"release": "prometheus"}, "interval": "15s"},
        "prometheusRule": {"labels": {"release": "prometheus"}},
    },
    "dashboards": {"namespace": "monitoring", "annotations": {"grafana_folder": "agentfleet"}},
}

SCENARIOS: dict[str, Scenario] = {
    "defaults": ({}, ()),
    "monitoring": ({}, (MONITORING_API,)),
    "named-namespaces": ({"watchNamespaces": ["team-a", "team-b"]}, (MONITORING_API,)),
    "namespace-pattern": ({"watchNamespaces": ["team-*,!team-x"]}, ()),
    "leader-election": ({"replicaCount": 2}, (MONITORING_API,)),
    "leader-election-named-namespaces": ({"replicaCount": 3, "watchNamespaces": ["team-a"]}, ()),
    "leader-election-one-replica": ({"leaderElection": {"enabled": True}}, ()),
    "no-crds": ({"crds": {"install": False}}, ()),
    "everything-set": (EVERYTHING_SET, (MONITORING_API,)),
}
