"""The chart's CRDs are the generated ones, installed and kept as the values say.

The copies under charts/agentfleet/files/crds cannot drift from the models: the first test
compares them byte for byte with what `agentfleet crds` writes.
"""

from __future__ import annotations

import pytest

from agentfleet.crd import generate_crds, render_crd

from .conftest import Render
from .rendering import CHART_DIR, Obj

CHART_CRDS = CHART_DIR / "files" / "crds"
GENERATED = generate_crds()
REFRESH = "run `agentfleet crds --output charts/agentfleet/files/crds`"


def test_chart_crds_are_exactly_what_the_models_generate() -> None:
    assert {p.name for p in CHART_CRDS.glob("*.yaml")} == set(GENERATED), REFRESH
    for name, crd in GENERATED.items():
        text = (CHART_CRDS / name).read_text(encoding="utf-8")
        assert text == render_crd(crd), f"{name} is stale: {REFRESH}"


def agentfleet_crds(crds: list[Obj]) -> dict[str, Obj]:
    return {c["metadata"]["name"]: c for c in crds if c["spec"]["group"] == "agentfleet.dev"}


def test_rendered_crds_keep_every_field_of_the_generated_ones(render: Render) -> None:
    """Helm reads each file as YAML and writes it back: nothing may be lost or retyped."""
    rendered = agentfleet_crds(render().of_kind("CustomResourceDefinition"))
    assert set(rendered) == {crd["metadata"]["name"] for crd in GENERATED.values()}
    for crd in GENERATED.values():
        got = rendered[crd["metadata"]["name"]]
        assert {k: v for k, v in got.items() if k != "metadata"} == {
            k: v for k, v in crd.items() if k != "metadata"
        }
        assert got["metadata"]["labels"]["app.kubernetes.io/part-of"] == "agentfleet"


KEEP = {"helm.sh/resource-policy": "keep"}


@pytest.mark.parametrize(("keep", "annotations"), [(True, KEEP), (False, None)])
def test_crds_survive_uninstall_only_when_kept(
    render: Render, keep: bool, annotations: dict[str, str] | None
) -> None:
    for crd in render({"crds": {"keep": keep}}).of_kind("CustomResourceDefinition"):
        assert crd["metadata"].get("annotations") == annotations, crd["metadata"]["name"]


def test_no_crd_is_rendered_when_they_are_managed_elsewhere(render: Render) -> None:
    assert render({"crds": {"install": False}}).of_kind("CustomResourceDefinition") == []


def test_only_the_agentfleet_crds_whatever_the_replicas(render: Render) -> None:
    """Leader election uses the built-in Lease: no kopf peering CRD, object or hook."""
    for values in ({"replicaCount": 3}, {"replicaCount": 2, "watchNamespaces": ["team-a"]}):
        rendered = render(values)
        crds = rendered.of_kind("CustomResourceDefinition")
        assert {c["spec"]["group"] for c in crds} == {"agentfleet.dev"}
        assert not {"ClusterKopfPeering", "KopfPeering"} & rendered.kinds()
        hooks = {
            obj["kind"]
            for obj in rendered.objects
            if "helm.sh/hook" in (obj["metadata"].get("annotations") or {})
        }
        assert hooks == {"Pod"}  # the one hook left is the `helm test` Pod
