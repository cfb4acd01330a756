"""Label and field selectors parsed and matched the way the Kubernetes API documents them."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Matcher = Callable[[Mapping[str, Any]], bool]

_SET_RE = re.compile(r"^\s*(!?)([A-Za-z0-9./_-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s*$")

# Field selectors the API accepts for every kind, plus the Pod ones operators use.
_FIELDS_ANY = {"metadata.name", "metadata.namespace"}
_FIELDS_BY_PLURAL = {"pods": {"status.phase", "spec.nodeName", "spec.restartPolicy"}}


class SelectorError(ValueError):
    """A selector the API server would answer with 400 Bad Request."""


def _split_requirements(text: str) -> list[str]:
    """Split on commas outside parentheses, because `in (a,b)` carries commas of its own."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return [part for part in parts if part.strip()]


def parse_label_selector(text: str | None) -> Matcher | None:
    """Compile a labelSelector (equality- and set-based) into a predicate on labels."""
    if not text:
        return None
    checks: list[Matcher] = []
    for requirement in _split_requirements(text):
        if m := _SET_RE.match(requirement):
            if m.group(1):
                raise SelectorError(f"invalid label selector: {requirement!r}")
            key, op = m.group(2), m.group(3)
            values = {v.strip() for v in m.group(4).split(",") if v.strip()}
            if op == "in":
                checks.append(lambda lb, k=key, vs=values: lb.get(k) in vs)
            else:
                checks.append(lambda lb, k=key, vs=values: lb.get(k) not in vs)
        elif m := _EQ_RE.match(requirement):
            key, op, value = m.group(1), m.group(2), m.group(3)
            if op == "!=":
                checks.append(lambda lb, k=key, v=value: lb.get(k) != v)
            else:
                checks.append(lambda lb, k=key, v=value: lb.get(k) == v)
        elif m := _EXISTS_RE.match(requirement):
            key = m.group(2)
            if m.group(1):
                checks.append(lambda lb, k=key: k not in lb)
            else:
                checks.append(lambda lb, k=key: k in lb)
        else:
            raise SelectorError(f"unable to parse requirement: {requirement!r}")
    return lambda labels: all(check(labels) for check in checks)


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return "" if value is None else str(value)


def parse_field_selector(text: str | None, plural: str) -> Matcher | None:
    """Compile a fieldSelector into a predicate on whole objects, refusing unsupported fields."""
    if not text:
        return None
    allowed = _FIELDS_ANY | _FIELDS_BY_PLURAL.get(plural, set())
    checks: list[Matcher] = []
    for requirement in _split_requirements(text):
        m = _EQ_RE.match(requirement)
        if not m:
            raise SelectorError(f"invalid field selector: {requirement!r}")
        path, op, value = m.group(1), m.group(2), m.group(3)
        if path not in allowed:
            raise SelectorError(f'field label not supported: "{path}"')
        if op == "!=":
            checks.append(lambda o, p=path, v=value: _field_value(o, p) != v)
        else:
            checks.append(lambda o, p=path, v=value: _field_value(o, p) == v)
    return lambda obj: all(check(obj) for check in checks)
