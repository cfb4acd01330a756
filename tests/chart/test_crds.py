"""The chart's CRDs are the generated ones, installed and kept as the values say.

The copies under charts/agentfleet/files/crds cannot drift from the models: the first test
compares them byte for byte with what `agentfleet crds` writes.
"""

from __future__ import annotations

import pytest

from agentfleet.crd import generate_crds, render_crd

from .conftest import Render
from .rendering import CHART_DIR, Obj, Rendered

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
    for crd in render({"crds": {"keep": keep}, "replicaCount": 2}).of_kind(
        "CustomResourceDefinition"
    ):
        assert crd["metadata"].get("annotations") == annotations, crd["metadata"]["name"]


def test_no_crd_is_rendered_when_they_are_managed_elsewhere(render: Render) -> None:
    rendered = render({"crds": {"install": False}, "replicaCount": 2})
    assert rendered.of_kind("CustomResourceDefinition") == []
    assert len(rendered.of_kind("ClusterKopfPeering")) == 1  # the object still is the chart's


def kopf_crd(rendered: Rendered) -> tuple[str, str]:
    """Name and scope of the one kopf peering CRD in the render."""
    [crd] = [
        c for c in rendered.of_kind("CustomResourceDefinition") if c["spec"]["group"] == "kopf.dev"
    ]
    return crd["metadata"]["name"], crd["spec"]["scope"]


def test_peering_crd_and_object_follow_the_operators_scope(render: Render) -> None:
    assert render().of_kind("ClusterKopfPeering") == []
    assert render().by_template["peering.yaml"] == []

    cluster = render({"replicaCount": 2})
    assert kopf_crd(cluster) == ("clusterkopfpeerings.kopf.dev", "Cluster")
    assert cluster.one("ClusterKopfPeering")["metadata"]["name"] == "agentfleet"

    named = render({"replicaCount": 2, "watchNamespaces": ["team-a", "team-*", "team-b"]})
    assert kopf_crd(named) == ("kopfpeerings.kopf.dev", "Namespaced")
    peerings = named.of_kind("KopfPeering")
    # one per plainly named namespace; a pattern's namespaces are not known at install time
    assert [p["metadata"]["namespace"] for p in peerings] == ["team-a", "team-b"]


def test_peering_objects_are_created_after_their_crd(render: Render) -> None:
    """Helm maps all of a release's objects to APIs before it creates any: a KopfPeering next
    to its own CRD would fail the first install, so it is a post-install hook."""
    for values in ({"replicaCount": 2}, {"replicaCount": 2, "watchNamespaces": ["team-a"]}):
        rendered = render(values)
        for peering in rendered.of_kind("ClusterKopfPeering") + rendered.of_kind("KopfPeering"):
            hooks = peering["metadata"]["annotations"]["helm.sh/hook"].split(",")
            assert hooks == ["post-install", "post-upgrade"]
