"""The agent CLI versions agentfleet is built and tested against, read from one file.

`src/agentfleet/versions.env` is that file. The runner images' Dockerfiles take their ARG
defaults from it (a test checks they agree), `dev.py` installs those versions from npm for the
tests, and it ships inside the package, so an installed agentfleet knows them too.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

CLI_PACKAGES: dict[str, tuple[str, str]] = {
    "claude-code": ("@anthropic-ai/claude-code", "CLAUDE_CODE_VERSION"),
    "gemini": ("@google/gemini-cli", "GEMINI_CLI_VERSION"),
    "codex": ("@openai/codex", "CODEX_VERSION"),
}

CLI_BINARIES: dict[str, str] = {"claude-code": "claude", "gemini": "gemini", "codex": "codex"}
"""The command each CLI package installs."""


def parse_versions(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


@cache
def pinned_versions() -> dict[str, str]:
    """Executor name -> pinned CLI version."""
    text = resources.files("agentfleet").joinpath("versions.env").read_text(encoding="utf-8")
    values = parse_versions(text)
    return {executor: values[key] for executor, (_, key) in CLI_PACKAGES.items()}


def npm_specs() -> list[str]:
    """`package@version` for each CLI, as `npm install` takes them."""
    versions = pinned_versions()
    return [f"{package}@{versions[name]}" for name, (package, _) in CLI_PACKAGES.items()]
