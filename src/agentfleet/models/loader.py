"""Manifests to typed models: multi-document YAML files or folders, with errors a user can fix."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from . import KINDS
from .criteria import CRITERION_TYPES
from .meta import API_VERSION, Resource

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class ManifestIssue:
    """One thing wrong with one document: where it is and why, in words a user can act on."""

    file: str
    document: int | None
    field: str | None
    reason: str

    def __str__(self) -> str:
        where = self.file
        if self.document is not None:
            where += f" (document {self.document})"
        if self.field:
            where += f": {self.field}"
        return f"{where}: {self.reason}"


class ManifestError(ValueError):
    """Every issue found in a set of manifests, not just the first."""

    def __init__(self, issues: list[ManifestIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


@dataclass(frozen=True)
class LoadedResource:
    resource: Resource[Any, Any]
    file: str
    document: int


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in _user_loc(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + part
    return path


def _describe(error: ErrorDetails) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "required field is missing"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _user_loc(loc: tuple[int | str, ...]) -> list[int | str]:
    """The location as the user wrote it, without pydantic's markers.

    pydantic adds `[key]` under a map key it refused, and names the chosen union member
    right after a success criterion's index (`successCriteria[0].tests_pass.command`).
    """
    tags = {c.model_fields["type"].default for c in CRITERION_TYPES}
    parts: list[int | str] = []
    for index, part in enumerate(loc):
        if part == "[key]":
            continue
        after_criterion = (
            index >= 2 and isinstance(loc[index - 1], int) and loc[index - 2] == "successCriteria"
        )
        if after_criterion and part in tags:
            continue
        parts.append(part)
    return parts


def parse_document(doc: Any, file: str, index: int) -> Resource[Any, Any]:
    """One YAML document into its model; raises ManifestError naming file, document and field."""
    if not isinstance(doc, dict):
        raise ManifestError(
            [ManifestIssue(file, index, None, f"expected a mapping, got {type(doc).__name__}")]
        )
    api_version = doc.get("apiVersion")
    kind = doc.get("kind")
    if api_version != API_VERSION:
        raise ManifestError(
            [
                ManifestIssue(
                    file, index, "apiVersion", f"expected {API_VERSION!r}, got {api_version!r}"
                )
            ]
        )
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ManifestError(
            [
                ManifestIssue(
                    file,
                    index,
                    "kind",
                    f"unknown kind {kind!r}; expected one of {', '.join(sorted(KINDS))}",
                )
            ]
        )
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        issues = [
            ManifestIssue(file, index, _field_path(err["loc"]), _describe(err))
            for err in exc.errors()
        ]
        raise ManifestError(issues) from exc


def manifest_files(path: Path) -> list[Path]:
    """A file, or every manifest below a folder, in a stable order."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in MANIFEST_SUFFIXES and p.is_file())
    if not path.exists():
        raise ManifestError([ManifestIssue(str(path), None, None, "no such file or folder")])
    return [path]


def load_manifests(paths: Iterable[Path | str]) -> list[LoadedResource]:
    """Every resource in `paths`; raises one ManifestError listing every issue found."""
    loaded: list[LoadedResource] = []
    issues: list[ManifestIssue] = []
    for raw in paths:
        try:
            files = manifest_files(Path(raw))
        except ManifestError as exc:
            issues.extend(exc.issues)
            continue
        for file in files:
            try:
                docs = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
                problem = getattr(exc, "problem", None) or str(exc)
                issues.append(
                    ManifestIssue(str(file), None, None, f"invalid YAML{where}: {problem}")
                )
                continue
            except (OSError, UnicodeDecodeError) as exc:
                issues.append(ManifestIssue(str(file), None, None, f"cannot read: {exc}"))
                continue
            for index, doc in enumerate(docs, start=1):
                if doc is None:
                    continue
                try:
                    loaded.append(
                        LoadedResource(parse_document(doc, str(file), index), str(file), index)
                    )
                except ManifestError as exc:
                    issues.extend(exc.issues)
    seen: dict[tuple[str, str], LoadedResource] = {}
    for item in loaded:
        key = (item.resource.kind, item.resource.name)
        if key in seen:
            first = seen[key]
            issues.append(
                ManifestIssue(
                    item.file,
                    item.document,
                    "metadata.name",
                    f"{key[0]} {key[1]!r} is defined twice (first in {first.file}, "
                    f"document {first.document})",
                )
            )
        seen[key] = item
    if issues:
        raise ManifestError(issues)
    return loaded
