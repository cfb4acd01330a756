"""The real agent CLIs at the pinned versions, where `dev.py` installed them from npm.

Tests that drive a real CLI skip when it is missing, unless AGENTFLEET_REQUIRE_AGENT_CLIS=1
(set by `.ci/run`): there a missing CLI is a failure, so CI cannot pass without them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from agentfleet.executors.versions import CLI_BINARIES, CLI_PACKAGES, pinned_versions

ROOT = Path(__file__).resolve().parents[2]
INSTALL_DIR = Path(os.environ.get("AGENTFLEET_AGENT_CLIS", ROOT / ".venv" / "agent-clis"))


def cli_path(executor: str) -> Path | None:
    """The installed binary of `executor` ("claude-code", "gemini", "codex"), or None."""
    candidate = INSTALL_DIR / "node_modules" / ".bin" / CLI_BINARIES[executor]
    if candidate.exists():
        return candidate
    return None


def require_cli(executor: str) -> Path:
    """The binary, or skip (fail under AGENTFLEET_REQUIRE_AGENT_CLIS=1) naming what is missing."""
    path = cli_path(executor)
    if path is not None:
        return path
    package, _ = CLI_PACKAGES[executor]
    version = pinned_versions()[executor]
    message = (
        f"{package}@{version} is not installed in {INSTALL_DIR}: run `python3 dev.py test` "
        "(it installs the pinned agent CLIs with npm)"
    )
    if os.environ.get("AGENTFLEET_REQUIRE_AGENT_CLIS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def node_available() -> bool:
    return shutil.which("node") is not None
