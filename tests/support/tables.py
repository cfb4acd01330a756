"""Server-side Table rendering, so `kubectl get` shows a CRD's additionalPrinterColumns."""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

JSON = dict[str, Any]

_TOKEN_RE = re.compile(
    r"\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*[\"']([^\"']*)[\"']\)\]"
)
_NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}
_AGE_COLUMN = {
    "name": "Age",
    "type": "date",
    "jsonPath": ".metadata.creationTimestamp",
    "description": "CreationTimestamp is the time the object was created.",
}


def wants_table(accept: str | None) -> bool:
    """Whether the client (kubectl get) asked for a meta.k8s.io Table."""
    return bool(accept) and "as=Table" in (accept or "")


def jsonpath(obj: Any, path: str) -> Any:
    """Evaluate the JSONPath subset printer columns use: fields, [n], and [?(@.k=="v")]."""
    value = obj
    for field, index, filter_key, filter_value in _TOKEN_RE.findall(path.strip()):
        if field:
            value = value.get(field) if isinstance(value, dict) else None
        elif index:
            i = int(index)
            value = value[i] if isinstance(value, list) and i < len(value) else None
        else:
            items = value if isinstance(value, list) else []
            value = next(
                (it for it in items if str(jsonpath(it, "." + filter_key)) == filter_value), None
            )
        if value is None:
            return None
    return value


def _age(timestamp: Any) -> str:
    """Render a timestamp as kubectl's human duration (5s, 3m, 2h, 4d)."""
    try:
        then = datetime.datetime.fromisoformat(str(timestamp).replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    seconds = int((datetime.datetime.now(tz=datetime.UTC) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _cell(value: Any, column: JSON) -> Any:
    if value is None:
        return None
    if column.get("type") == "date":
        return _age(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def render_table(
    objs: list[JSON], printer_columns: list[JSON], resource_version: str, include: str | None
) -> JSON:
    """Build the Table the API serves for `Accept: ...;as=Table`, one row per object."""
    columns = list(printer_columns) or [_AGE_COLUMN]
    definitions = [_NAME_COLUMN] + [
        {
            "name": c["name"],
            "type": c.get("type", "string"),
            "format": c.get("format", ""),
            "description": c.get("description", ""),
            "priority": c.get("priority", 0),
        }
        for c in columns
    ]
    rows = []
    for obj in objs:
        cells = [obj["metadata"]["name"]]
        cells += [_cell(jsonpath(obj, c.get("jsonPath", "")), c) for c in columns]
        row: JSON = {"cells": cells}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    }
