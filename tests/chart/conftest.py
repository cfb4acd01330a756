"""Rendering the chart offline with helm-python-sdk (the Helm v4 Go SDK through ctypes).

The SDK is the optional `chart` extra; tests that render take the `render` fixture and are
skipped, not failed, where it is not installed. Tests that only read files need nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .rendering import CHART_DIR, NAMESPACE, RELEASE, Obj, Rendered

Render = Callable[..., Rendered]


@pytest.fixture(scope="session")
def helm() -> Any:
    return pytest.importorskip("helm_python", reason="needs the `chart` extra (helm-python-sdk)")


@pytest.fixture(scope="session")
def chart(helm: Any) -> Iterator[Any]:
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def render(chart: Any) -> Render:
    """Render with these values, as a cluster serving `api_versions` would.

    Like `helm install`, rendering first checks the values against values.schema.json and
    raises `HelmValuesError`. `Chart.render` in helm-python-sdk 0.2.2 does not pass API
    versions on, though the library under it takes them (`helm template --api-versions`), so
    this calls the same `helm_render` entry point with that option added.
    """
    from helm_python import _native

    def render_(values: Obj | None = None, *, api_versions: tuple[str, ...] = ()) -> Rendered:
        options = {"name": RELEASE, "namespace": NAMESPACE, "api_versions": list(api_versions)}
        raw = _native.call_string(
            "helm_render", chart._raw(), json.dumps(values or {}), json.dumps(options)
        )
        return Rendered(json.loads(raw))

    return render_
