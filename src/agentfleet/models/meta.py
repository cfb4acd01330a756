"""Shared building blocks of every agentfleet resource: metadata, references, conditions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Final, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "agentfleet.dev"
VERSION = "v1alpha1"
API_VERSION: Final = "agentfleet.dev/v1alpha1"

DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS1123_SUBDOMAIN = re.compile(DNS1123_SUBDOMAIN)
_DNS1123_LABEL = re.compile(DNS1123_LABEL)


def _check_object_name(value: str) -> str:
    if len(value) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name: use at most 253 lowercase letters, digits, "
            "'-' and '.', starting and ending with a letter or digit"
        )
    return value


def _check_label_name(value: str) -> str:
    if len(value) > 63 or not _DNS1123_LABEL.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name: use at most 63 lowercase letters, digits "
            "and '-', starting and ending with a letter or digit"
        )
    return value


ObjectName = Annotated[
    str,
    AfterValidator(_check_object_name),
    Field(json_schema_extra={"pattern": DNS1123_SUBDOMAIN, "maxLength": 253}),
]
"""A Kubernetes object name (DNS-1123 subdomain): it ends up in Pod names, branches and paths."""

LabelName = Annotated[
    str,
    AfterValidator(_check_label_name),
    Field(json_schema_extra={"pattern": DNS1123_LABEL, "maxLength": 63}),
]
"""A DNS-1123 label: used where the name also becomes a label value or part of a run name."""


class CamelModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are an error, not silence."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
        validate_default=True,
        defer_build=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready camelCase form, without unset optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ObjectRef(CamelModel):
    """A reference to another agentfleet object in the same namespace, by name."""

    name: ObjectName


class ObjectMeta(CamelModel):
    """The part of Kubernetes ObjectMeta agentfleet reads; the rest is kept as it came."""

    model_config = ConfigDict(extra="allow")

    name: ObjectName
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None
    uid: str | None = None
    resource_version: str | None = None
    creation_timestamp: datetime | None = None


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(CamelModel):
    """A Kubernetes-style condition: one observation, keyed by type."""

    type: str
    status: ConditionStatus
    reason: str = ""
    message: str = ""
    last_transition_time: datetime | None = None
    observed_generation: int | None = None


class Priority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Higher is more urgent; used as a scheduling tie-breaker."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.LOW: 0, Priority.MEDIUM: 1, Priority.HIGH: 2, Priority.CRITICAL: 3}


class AgentType(StrEnum):
    DEVELOPMENT = "Development"
    QUALITY_ASSURANCE = "QualityAssurance"
    CODE_REVIEW = "CodeReview"
    DOCUMENTATION = "Documentation"
    INFRASTRUCTURE = "Infrastructure"


Complexity = Annotated[int, Field(ge=1, le=10)]
"""An effort estimate on a 1-10 scale; the scheduler uses it as a task's weight."""


class Status(CamelModel):
    """What every status carries, per the Kubernetes API conventions."""

    phase: str | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)


@dataclass(frozen=True, kw_only=True)
class PrinterColumn:
    """One `kubectl get` column of a CRD."""

    name: str
    type: Literal["string", "integer", "number", "boolean", "date"]
    json_path: str
    description: str = ""
    priority: int = 0


SpecT = TypeVar("SpecT", bound=CamelModel)
StatusT = TypeVar("StatusT", bound=Status)


class _ResourceBase(CamelModel):
    KIND: ClassVar[str]
    PLURAL: ClassVar[str]
    SHORT_NAMES: ClassVar[tuple[str, ...]]
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = ()

    api_version: Literal["agentfleet.dev/v1alpha1"] = API_VERSION
    kind: str
    metadata: ObjectMeta

    @property
    def name(self) -> str:
        return self.metadata.name


if TYPE_CHECKING:

    class Resource(_ResourceBase, Generic[SpecT, StatusT]):
        """A namespaced agentfleet object: apiVersion, kind, metadata, spec, status."""

        spec: SpecT
        status: StatusT | None = None

else:

    class Resource(_ResourceBase):
        """A namespaced agentfleet object: apiVersion, kind, metadata, spec, status.

        Generic for the type checker only: each kind declares its own `spec` and `status`,
        and a pydantic generic would build its schema at import, which every runner start
        would pay for.
        """

        spec: CamelModel
        status: Status | None = None

        def __class_getitem__(cls, _params: Any) -> type[Resource]:
            return cls


def phase_columns(
    summary: str, progress_path: str | None = None, timed: bool = False
) -> tuple[PrinterColumn, ...]:
    """Printer columns every kind shares: phase, an optional progress, the summary reason, age."""
    columns = [PrinterColumn(name="Phase", type="string", json_path=".status.phase")]
    if progress_path:
        columns.append(PrinterColumn(name="Progress", type="string", json_path=progress_path))
    columns.append(
        PrinterColumn(
            name="Reason",
            type="string",
            json_path=f'.status.conditions[?(@.type=="{summary}")].reason',
            priority=1,
        )
    )
    columns.append(PrinterColumn(name="Age", type="date", json_path=".metadata.creationTimestamp"))
    return tuple(columns)
