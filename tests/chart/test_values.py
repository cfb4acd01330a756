"""values.yaml is documented line by line, and values.schema.json refuses what the chart
would otherwise silently ignore or render into a broken object."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from .rendering import CHART_DIR, Obj

VALUES_TEXT = (CHART_DIR / "values.yaml").read_text(encoding="utf-8")
VALUES = yaml.safe_load(VALUES_TEXT)
SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))


def leaf_paths(values: Obj, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in values.items():
        if isinstance(value, dict) and value:
            yield from leaf_paths(value, (*prefix, key))
        else:
            yield (*prefix, key)


def test_every_value_has_a_comment_above_it() -> None:
    lines = VALUES_TEXT.splitlines()
    missing = []
    for number, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
            continue
        key, _, rest = stripped.partition(":")
        if not rest.strip():  # a section header: its children carry the comments
            continue
        if not lines[number - 1].strip().startswith("#"):
            missing.append(f"line {number + 1}: {key}")
    assert missing == []


def test_schema_describes_every_default_value() -> None:
    for path in leaf_paths(VALUES):
        node = SCHEMA
        for key in path:
            if "properties" not in node and isinstance(node.get("additionalProperties"), dict):
                break  # a free-form map (labels, requests): validate_schema checks its values
            assert key in node.get("properties", {}), f"{'.'.join(path)} is not in the schema"
            node = node["properties"][key]


def test_schema_closes_every_object_of_the_charts_own() -> None:
    """Objects the chart defines refuse unknown keys; free-form maps say what they map to."""

    def walk(node: Obj, path: str) -> Iterator[str]:
        if node.get("type") == "object" and "properties" in node:
            if node.get("additionalProperties") is not False:
                yield path
            for key, child in node["properties"].items():
                yield from walk(child, f"{path}.{key}")

    open_objects = [p for p in walk(SCHEMA, "") if p not in {".resources"}]
    assert open_objects == []


def test_default_values_pass_the_schema(chart: Any) -> None:
    chart.validate_schema(None)
    chart.validate_schema(VALUES)


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"replicaCunt": 2}, "replicaCunt"),
        ({"image": {"tags": "1.0"}}, "tags"),
        ({"workspace": {"acessMode": "ReadWriteMany"}}, "acessMode"),
        ({"metrics": {"serviceMonitor": {"enable": True}}}, "enable"),
        ({"workspace": {"accessMode": "ReadWriteSometimes"}}, "accessMode"),
        ({"workspace": {"size": "10 gigs"}}, "size"),
        ({"runner": {"imagePullPolicy": "Sometimes"}}, "imagePullPolicy"),
        ({"operator": {"qps": -1}}, "qps"),
        ({"watchNamespaces": ["Team A"]}, "watchNamespaces"),
        ({"image": {"tag": 1.5}}, "tag"),
        ({"peering": {"name": "agentfleet"}}, "peering"),  # gone with kopf peering
        ({"leaderElection": {"enabled": "yes"}}, "enabled"),
        ({"runner": {"serviceAccountName": "Agent Runner"}}, "serviceAccountName"),
        ({"runner": {"imagePullSecrets": ["a", "a"]}}, "imagePullSecrets"),
        ({"runner": {"nodeSelector": {"pool=x": "agents"}}}, "pool=x"),
        ({"runner": {"nodeSelector": {"pool": 1}}}, "nodeSelector"),
        ({"runner": {"tolerations": [{"key": "x", "operator": "In"}]}}, "operator"),
        ({"runner": {"tolerations": [{"key": "x", "efect": "NoSchedule"}]}}, "efect"),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else v,
)
def test_schema_refuses_typos_and_impossible_values(
    chart: Any, helm: Any, values: Obj, says: str
) -> None:
    with pytest.raises(helm.HelmValuesError, match=says):
        chart.validate_schema(values)


def test_watch_namespaces_example_puts_an_exclusion_with_its_glob() -> None:
    """kopf ORs separate entries: a lone "!team-x" entry would serve nearly every namespace."""
    readme = (CHART_DIR / "README.md").read_text(encoding="utf-8")
    for text in (VALUES_TEXT, readme):
        assert '"team-*,!team-x"' in text
