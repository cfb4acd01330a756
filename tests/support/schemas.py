"""Structural-schema pruning, defaulting and validation of custom resources, as the API does."""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonschema

_ROOT_KEPT = ("apiVersion", "kind", "metadata")
_REQUIRED_RE = re.compile(r"^'(.+)' is a required property$")


def to_jsonschema(schema: Any) -> Any:
    """Translate OpenAPI v3 extensions (nullable, int-or-string) into plain JSON Schema."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties"):
            out[key] = {name: to_jsonschema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = to_jsonschema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_jsonschema(sub) for sub in value]
        elif key == "default":
            continue  # defaults are applied before validation, never validated against
        else:
            out[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def prune_and_default(value: Any, schema: Any, *, root: bool = False) -> Any:
    """Drop fields the schema does not declare and fill declared defaults, like the API server.

    Unknown fields survive only under x-kubernetes-preserve-unknown-fields or
    additionalProperties; metadata, apiVersion and kind at the root are never pruned.
    """
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        out: dict[str, Any] = {}
        for key, sub in value.items():
            if root and key in _ROOT_KEPT:
                out[key] = sub
            elif key in props:
                out[key] = prune_and_default(sub, props[key])
            elif isinstance(extra, dict):
                out[key] = prune_and_default(sub, extra)
            elif extra is True or preserve:
                out[key] = sub
        for key, sub_schema in props.items():
            if key not in out and isinstance(sub_schema, dict) and "default" in sub_schema:
                out[key] = prune_and_default(copy.deepcopy(sub_schema["default"]), sub_schema)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune_and_default(item, schema["items"]) for item in value]
    return value


def _field_path(parts: list[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def validation_causes(obj: dict[str, Any], validator: jsonschema.Validator) -> list[dict[str, str]]:
    """List every schema violation as a Status cause naming the field, as a 422 carries them."""
    causes: list[dict[str, str]] = []
    body = {k: v for k, v in obj.items() if k != "metadata"}
    for error in sorted(validator.iter_errors(body), key=lambda e: list(map(str, e.path))):
        parts = list(error.absolute_path)
        reason = "FieldValueInvalid"
        if error.validator == "required" and (m := _REQUIRED_RE.match(error.message)):
            parts.append(m.group(1))
            reason = "FieldValueRequired"
            message = "Required value"
        elif error.validator == "enum":
            reason = "FieldValueNotSupported"
            allowed = ", ".join(f'"{v}"' for v in error.validator_value)
            message = f'Unsupported value: "{error.instance}": supported values: {allowed}'
        elif error.validator == "type":
            reason = "FieldValueTypeInvalid"
            field = _field_path(parts)
            message = f"Invalid value: {error.instance!r}: {field} in body must be of type "
            message += f"{error.validator_value}"
        else:
            message = f"Invalid value: {error.instance!r}: {error.message}"
        causes.append({"reason": reason, "message": message, "field": _field_path(parts)})
    return causes


def make_validator(schema: dict[str, Any] | None) -> jsonschema.Validator | None:
    """Build a validator once per CRD version, so writes do not recompile the schema."""
    if not schema:
        return None
    translated = to_jsonschema(schema)
    props = translated.get("properties", {})
    for key in _ROOT_KEPT:
        props.pop(key, None)  # metadata is validated by the API machinery, not the CRD schema
    return jsonschema.Draft4Validator(translated)
