"""What a rendered chart looks like to the tests: its objects by template and kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "charts" / "agentfleet"
RELEASE = "af"
NAMESPACE = "agentfleet-system"
FULLNAME = f"{RELEASE}-agentfleet"
MONITORING_API = "monitoring.coreos.com/v1"

Obj = dict[str, Any]
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it: 10x faster


class Rendered:
    """One `helm template`: the objects of every template, and NOTES.txt apart."""

    def __init__(self, manifests: dict[str, str]) -> None:
        prefix = f"{CHART_DIR.name}/templates/"
        self.notes = manifests.pop(f"{prefix}NOTES.txt", "")
        self.by_template: dict[str, list[Obj]] = {
            path.removeprefix(prefix): [doc for doc in yaml.load_all(text, Loader=_LOADER) if doc]
            for path, text in manifests.items()
        }
        self.objects = [obj for objs in self.by_template.values() for obj in objs]

    def of_kind(self, kind: str) -> list[Obj]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind: str) -> Obj:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, found {len(found)}"
        return found[0]

    def kinds(self) -> set[str]:
        return {obj["kind"] for obj in self.objects}
