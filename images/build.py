"""Build every image at the versions pinned in src/agentfleet/versions.env (needs Docker).

    python3 images/build.py [--print] [--registry ghcr.io/agentfleet] [--push]

Run from the repository root with agentfleet importable (`.venv/bin/python`): the agent CLIs
and their versions come from agentfleet.executors.versions, the one place they are listed.
`--print` shows the commands without running them.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from agentfleet.executors.versions import (
    CLI_BINARIES,
    CLI_PACKAGES,
    parse_versions,
    pinned_versions,
)

ROOT = Path(__file__).resolve().parents[1]
VERSIONS = ROOT / "src" / "agentfleet" / "versions.env"


def plan(registry: str) -> list[list[str]]:
    """`docker build` argv per image: the operator, the runner, then one per agent CLI."""
    values = parse_versions(VERSIONS.read_text(encoding="utf-8"))
    tag = values["AGENTFLEET_VERSION"]
    common = [a for key, value in sorted(values.items()) for a in ("--build-arg", f"{key}={value}")]
    builds = [
        [
            "docker",
            "build",
            "-f",
            f"images/{image}/Dockerfile",
            *common,
            "-t",
            f"{registry}/{image}:{tag}",
            ".",
        ]
        for image in ("operator", "runner")
    ]
    versions = pinned_versions()
    for executor, (package, _key) in CLI_PACKAGES.items():
        cli = [
            "--build-arg",
            f"CLI_PACKAGE={package}",
            "--build-arg",
            f"CLI_VERSION={versions[executor]}",
            "--build-arg",
            f"CLI_BINARY={CLI_BINARIES[executor]}",
        ]
        builds.append(
            [
                "docker",
                "build",
                "-f",
                "images/runner-agent/Dockerfile",
                *common,
                *cli,
                "-t",
                f"{registry}/runner-{executor}:{tag}",
                ".",
            ]
        )
    return builds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default="ghcr.io/agentfleet")
    parser.add_argument("--print", action="store_true", help="print the commands only")
    parser.add_argument("--push", action="store_true", help="docker push each image built")
    args = parser.parse_args()
    for argv in plan(args.registry):
        print("+", shlex.join(argv), flush=True)
        if args.print:
            continue
        if subprocess.call(argv, cwd=ROOT) != 0:
            return 1
        if args.push and subprocess.call(["docker", "push", argv[argv.index("-t") + 1]]) != 0:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
