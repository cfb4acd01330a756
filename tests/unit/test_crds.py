"""The generated CRDs: committed and current, structural, valid for Kubernetes, and not vacuous.

No API server can run here, so what it would check is checked offline: the CRD itself with
kubernetes-validate, the structural-schema rules by walking every node, and custom resources
with jsonschema against each CRD's own `openAPIV3Schema`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import schema_contents
from pydantic import ValidationError

from agentfleet.crd import HEADER, generate_crds, render_crd, structural, write_crds
from agentfleet.models import API_VERSION, GROUP, KINDS
from agentfleet.models.criteria import CRITERION_TYPES
from agentfleet.models.loader import parse_document

from .models.manifests import agent, batch, project, stage, task, ticket, workflow

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"
CRDS = generate_crds()
CRD_BY_KIND = {crd["spec"]["names"]["kind"]: crd for crd in CRDS.values()}
K8S_VERSIONS = ("1.25", kubernetes_validate.latest_version())  # oldest and newest it ships

Schema = dict[str, Any]


def openapi_schema(kind: str) -> Schema:
    return CRD_BY_KIND[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def nodes(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    """Every schema node with its path, the way the API server walks a structural schema."""
    yield path or ".", schema
    for name, prop in schema.get("properties", {}).items():
        yield from nodes(prop, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{*}}")


def all_nodes() -> Iterator[tuple[str, str, Schema]]:
    for kind in KINDS:
        for path, node in nodes(openapi_schema(kind)):
            yield kind, path, node


def to_json_schema(node: Schema) -> Schema:
    """The OpenAPI 3.0 subset of a CRD as JSON Schema, for jsonschema to check resources with.

    Objects with properties are closed (`additionalProperties: false`): the API server would
    prune an unknown field, but `kubectl apply` (strict field validation) and the models refuse
    it, and a test that let typos through would prove little.
    """
    out = {k: v for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if "properties" in out:
        out["properties"] = {k: to_json_schema(v) for k, v in out["properties"].items()}
        out.setdefault("additionalProperties", False)
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = to_json_schema(out["additionalProperties"])
    if "items" in out:
        out["items"] = to_json_schema(out["items"])
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if out.get(bound) is True:
            out[bound] = out.pop(plain)
        elif out.get(bound) is False:
            del out[bound]
    if node.get("nullable"):
        out["type"] = [out["type"], "null"]
    return out


def crd_errors(doc: Schema) -> list[str]:
    """What the resource's CRD schema says is wrong with it, one line per error."""
    validator = jsonschema.Draft202012Validator(to_json_schema(openapi_schema(doc["kind"])))
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


# --- committed files -----------------------------------------------------------------------------


def test_committed_crds_match_the_models() -> None:
    stale = "crds/ is out of date with src/agentfleet/models: run `agentfleet crds`"
    committed = {p.name for p in CRD_DIR.glob("*.yaml")}
    assert committed == set(CRDS), stale
    for name, crd in CRDS.items():
        assert (CRD_DIR / name).read_text(encoding="utf-8") == render_crd(crd), f"{name}: {stale}"


def test_write_crds_writes_one_file_per_kind_and_removes_only_its_own_stale_files(
    tmp_path: Path,
) -> None:
    (tmp_path / f"gone.{GROUP}.yaml").write_text(HEADER + "kind: Old\n", encoding="utf-8")
    (tmp_path / f"mine.{GROUP}.yaml").write_text("# hand-written\n", encoding="utf-8")

    paths = write_crds(tmp_path)

    assert [p.name for p in paths] == [f"{m.PLURAL}.{GROUP}.yaml" for m in KINDS.values()]
    assert not (tmp_path / f"gone.{GROUP}.yaml").exists()
    assert (tmp_path / f"mine.{GROUP}.yaml").exists()
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert text.startswith(HEADER)
        assert yaml.safe_load(text) == CRDS[path.name]


# --- the CRD object ------------------------------------------------------------------------------


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
@pytest.mark.parametrize("kind", list(KINDS))
def test_crd_is_a_valid_apiextensions_v1_object(kind: str, k8s_version: str) -> None:
    kubernetes_validate.validate(CRD_BY_KIND[kind], k8s_version, strict=True)


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_schema_node_uses_only_keywords_kubernetes_knows(kind: str) -> None:
    """kubernetes-validate stops at the first `items`; check every node on its own instead."""
    version = kubernetes_validate.latest_version()
    definitions = schema_contents(
        f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version
    )
    props = "#/$defs/io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps"
    validator = jsonschema.Draft202012Validator({**definitions, "$ref": props})
    for path, node in nodes(openapi_schema(kind)):
        errors = [e.message for e in validator.iter_errors(node)]
        assert not errors, f"{kind} {path}: {errors}"


@pytest.mark.parametrize(("kind", "model"), list(KINDS.items()))
def test_crd_names_follow_the_kind(kind: str, model: Any) -> None:
    crd = CRD_BY_KIND[kind]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{model.PLURAL}.{GROUP}"
    spec = crd["spec"]
    assert spec["group"] == GROUP
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": kind,
        "listKind": f"{kind}List",
        "plural": model.PLURAL,
        "singular": kind.lower(),
        "shortNames": list(model.SHORT_NAMES),
        "categories": ["agentfleet"],
    }
    [version] = spec["versions"]
    assert f"{GROUP}/{version['name']}" == API_VERSION
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}


# --- structural schemas --------------------------------------------------------------------------


def test_schemas_carry_no_json_schema_only_constructs() -> None:
    forbidden = {"$ref", "$defs", "anyOf", "allOf", "oneOf", "not", "const", "title"}
    forbidden |= {"discriminator", "propertyNames"}
    for kind, path, node in all_nodes():
        assert not forbidden & set(node), f"{kind} {path}: {sorted(forbidden & set(node))}"
        assert node.get("type") != "null", f"{kind} {path}"
        assert "default" not in node or node["default"] is not None, f"{kind} {path}"


def test_every_schema_node_is_structural() -> None:
    for kind, path, node in all_nodes():
        where = f"{kind} {path}"
        assert node.get("type") or node.get("x-kubernetes-preserve-unknown-fields"), where
        assert not ("properties" in node and "additionalProperties" in node), where
        assert node.get("additionalProperties") is not False, where
        assert "items" not in node or isinstance(node["items"], dict), where
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            assert isinstance(node.get(bound, False), bool), where
        assert not (node.get("nullable") and "enum" in node), (
            f"{where}: the API server checks enum against null too; leave it non-nullable"
        )


@pytest.mark.parametrize("kind", list(KINDS))
def test_root_leaves_metadata_apiversion_and_kind_to_kubernetes(kind: str) -> None:
    root = openapi_schema(kind)
    assert root["type"] == "object"
    assert root["required"] == ["spec"]
    assert list(root["properties"]) == ["apiVersion", "kind", "metadata", "spec", "status"]
    assert root["properties"]["metadata"] == {"type": "object"}
    assert root["properties"]["apiVersion"]["type"] == "string"
    assert root["properties"]["kind"]["type"] == "string"
    assert "nullable" not in root["properties"]["status"]


def test_defaults_are_valid_under_their_own_schema() -> None:
    checked = 0
    for _kind, _path, node in all_nodes():
        if "default" in node:
            schema = to_json_schema({k: v for k, v in node.items() if k != "default"})
            jsonschema.validate(node["default"], schema)
            checked += 1
    assert checked, "expected some defaults to be carried over"


def test_success_criteria_become_one_object_with_the_type_as_enum() -> None:
    criterion = openapi_schema("Workflow")["properties"]["spec"]["properties"]["stages"]
    criterion = criterion["items"]["properties"]["successCriteria"]["items"]
    tags = [c.model_fields["type"].default for c in CRITERION_TYPES]

    assert criterion["type"] == "object"
    assert criterion["required"] == ["type"]
    assert criterion["properties"]["type"] == {"type": "string", "enum": tags}
    fields = {
        name for c in CRITERION_TYPES for name in c.model_json_schema(by_alias=True)["properties"]
    }
    assert set(criterion["properties"]) == fields
    # a default would be applied whatever the type, adding fields the type does not have
    assert not any("default" in prop for prop in criterion["properties"].values())


def test_exclusive_bounds_become_openapi_3_0_bounds() -> None:
    assert structural({"type": "integer", "exclusiveMinimum": 0}, {}) == {
        "type": "integer",
        "minimum": 1,
    }
    assert structural({"type": "number", "exclusiveMinimum": 0, "maximum": 1}, {}) == {
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 1,
    }


def test_dict_keyed_by_an_enum_is_a_map_that_names_its_keys() -> None:
    assignments = openapi_schema("TicketBatch")["properties"]["spec"]["properties"]
    assignments = assignments["agentAssignments"]
    assert assignments["type"] == "object"
    assert assignments["additionalProperties"] == {"type": "string"}
    assert "Development" in assignments["description"]


@pytest.mark.parametrize(
    "schema",
    [
        {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        {"type": "array", "uniqueItems": True, "items": {"type": "string"}},
        {"type": "object", "patternProperties": {"^x": {"type": "string"}}},
    ],
    ids=["union-of-two-types", "uniqueItems", "patternProperties"],
)
def test_constructs_without_a_structural_form_are_refused(schema: Schema) -> None:
    with pytest.raises(ValueError, match="structural"):
        structural(schema, {})


# --- printer columns -----------------------------------------------------------------------------

_METADATA_FIELDS = {".metadata.creationTimestamp": {"type": "string", "format": "date-time"}}
_COLUMN_TYPES = {"string": "string", "integer": "integer", "number": "number"}
_COLUMN_TYPES |= {"boolean": "boolean", "date": "string"}


def schema_at(root: Schema, json_path: str) -> Schema:
    """The schema node a printer column's JSONPath reads; filters like `[?(...)]` are skipped."""
    if json_path.startswith(".metadata."):
        return _METADATA_FIELDS[json_path]
    node = root
    for part in re.sub(r"\[[^\]]*\]", "", json_path).strip(".").split("."):
        if node.get("type") == "array":
            node = node["items"]
        assert part in node.get("properties", {}), f"{json_path}: no field {part!r}"
        node = node["properties"][part]
    return node


@pytest.mark.parametrize(("kind", "model"), list(KINDS.items()))
def test_printer_columns_read_fields_the_schema_has(kind: str, model: Any) -> None:
    columns = CRD_BY_KIND[kind]["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"] for c in columns] == [c.name for c in model.PRINTER_COLUMNS]
    assert {"Phase", "Age"} <= {c["name"] for c in columns}
    for column in columns:
        node = schema_at(openapi_schema(kind), column["jsonPath"])
        assert node["type"] == _COLUMN_TYPES[column["type"]], column
        if column["type"] == "date":
            assert node.get("format") == "date-time", column


# --- resources against their CRD -----------------------------------------------------------------


def _example_documents() -> list[Any]:
    params = []
    for path in sorted((ROOT / "examples").rglob("*.y*ml")):
        for index, doc in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8")), 1):
            if doc is not None:
                rel = path.relative_to(ROOT)
                params.append(pytest.param(doc, str(rel), index, id=f"{rel}#{index}"))
    return params


@pytest.mark.parametrize(("doc", "file", "index"), _example_documents())
def test_example_manifest_is_accepted_by_its_crd(doc: Schema, file: str, index: int) -> None:
    if str(doc.get("apiVersion", "")).split("/")[0] != GROUP:
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)
        return
    assert crd_errors(doc) == []
    parse_document(doc, file, index)  # and the models agree


def _full_resources() -> dict[str, Schema]:
    """One resource per kind with most fields set, status included, as the operator writes it."""
    when = "2026-01-02T03:04:05Z"
    condition = {"type": "Ready", "status": "True", "reason": "Valid", "lastTransitionTime": when}
    attempt = {
        "attempt": 1,
        "agent": "dev",
        "runName": "b1-t-1-implement-1",
        "phase": "Succeeded",
        "startTime": when,
        "finishTime": when,
        "exitCode": 0,
        "criteria": [{"type": "tests_pass", "passed": True}],
        "tokens": 1200,
        "costUsd": 0.12,
    }
    criteria = [
        {"type": "file_created", "pattern": "src/*.py"},
        {"type": "tests_pass", "command": "pytest -q"},
        {"type": "integration_tests_pass", "command": "make it"},
        {"type": "coverage_threshold", "minimum": 80},
        {"type": "bdd_tests_pass", "command": "behave"},
        {"type": "scenario_coverage", "minimum": 90.5},
        {"type": "design_approved", "threshold": 0.5},
    ]
    return {
        "Project": {
            **project(defaultAgentAssignments={"Development": "dev"}, setupScript="make setup"),
            "status": {"phase": "Ready", "observedGeneration": 1, "conditions": [condition]},
        },
        "AgentConfig": {
            **agent(
                maxParallelTasks=2,
                toolsEnabled=["Read"],
                subAgents={"reviewer": {"agentType": "CodeReview"}},
                credentialsSecretRef={"name": "claude"},
                environmentRequirements={"resourceLimits": {"memoryMb": 512, "cpuCores": 0.5}},
            ),
            "status": {"phase": "Ready", "activeRuns": 1, "conditions": [condition]},
        },
        "Workflow": {
            **workflow(
                stages=[stage("implement", successCriteria=criteria, timeoutMinutes=30)],
                failureStrategy="EscalateToHuman",
                maxRetries=1,
            ),
            "status": {"phase": "Ready"},
        },
        "TicketBatch": {
            **batch(
                tickets=[
                    ticket("T-1", estimatedComplexity=3, priority="high"),
                    ticket("T-2", "T-1"),
                ],
                strategy="ParallelBatch",
                batchSize=2,
                refinement={"enabled": True, "agentType": "Development"},
                agentAssignments={"Development": "dev"},
            ),
            "status": {
                "phase": "Processing",
                "counts": {"total": 2, "running": 1, "succeeded": 1},
                "progress": "1/2",
                "tickets": [{"id": "T-1", "task": "b1-t-1", "phase": "Succeeded"}],
                "refinementAttempts": [attempt],
                "startTime": when,
            },
        },
        "AgentTask": {
            **task(batchRef={"name": "b1"}, complexity=5, dependencies=["b1-t-0"]),
            "status": {
                "phase": "Running",
                "stages": [{"name": "implement", "phase": "Succeeded", "attempts": [attempt]}],
                "progress": "1/2",
                "tokens": 1200,
                "costUsd": 0.12,
                "startTime": when,
                "conditions": [condition],
            },
        },
    }


FULL = _full_resources()


@pytest.mark.parametrize("kind", list(KINDS))
def test_what_the_models_write_is_accepted_by_the_crd(kind: str) -> None:
    """The operator writes `to_wire()`, defaults filled in: the API server must take all of it."""
    wire = KINDS[kind].model_validate(FULL[kind]).to_wire()
    assert wire["status"], "the status must be part of the check"
    assert crd_errors(wire) == []


def _set(doc: Schema, path: str, value: Any) -> Schema:
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[last] = value
    return doc


BAD = [
    ("Workflow", "spec.failureStrategy", "GiveUp", "enum"),
    ("AgentConfig", "spec.baseExecutor.type", "vim", "enum"),
    ("AgentConfig", "spec.agentType", None, "null"),
    ("TicketBatch", "spec.strategy", "Random", "enum"),
    ("TicketBatch", "spec.parallelLimit", "three", "type"),
    ("TicketBatch", "spec.parallelLimit", 0, "minimum"),
    ("TicketBatch", "spec.tickets", [], "minItems"),
    ("AgentTask", "spec.title", "", "minLength"),
    ("AgentTask", "spec.tags", "urgent", "type"),
    ("Workflow", "spec.stages.0.successCriteria.0.type", "vibes", "enum"),
    ("Workflow", "spec.stages.0.successCriteria.3.minimum", 120, "maximum"),
    ("Workflow", "spec.stages.0.successCriteria.6.threshold", 0, "exclusiveMinimum"),
    ("Project", "spec.repository", {"baseBranch": "main"}, "required"),
    ("Project", "spec.repositry", {"url": "x"}, "unknown field"),
]


@pytest.mark.parametrize(
    ("kind", "path", "value", "rule"), BAD, ids=[f"{k}-{p}-{r}" for k, p, _, r in BAD]
)
def test_crd_schema_rejects_what_the_models_reject(
    kind: str, path: str, value: Any, rule: str
) -> None:
    good = FULL[kind]
    assert crd_errors(good) == [], "the baseline must be valid, or the rejection proves nothing"
    bad = _set(good, path, value)

    assert crd_errors(bad), f"the {kind} CRD accepted {path}={value!r} ({rule})"
    with pytest.raises(ValidationError):
        KINDS[kind].model_validate(bad)
