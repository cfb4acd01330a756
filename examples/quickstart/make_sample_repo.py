"""Make the quickstart's sample repository: a tiny git repo for the scripted agents to work in.

    python examples/quickstart/make_sample_repo.py DEST [--force]

Copies `sample-repo/` to DEST, adds the scripted agent as `tools/scripted_agent.py` (committed,
so every task's worktree has it), and commits it all on `main`. Needs only Python and git.
DEST must be missing or empty; `--force` replaces a folder this script made before, known by
its `.agentfleet-demo` marker, and nothing else.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SAMPLE = HERE / "sample-repo"
AGENT = HERE / "agent" / "scripted_agent.py"
MARKER = ".agentfleet-demo"
MARKER_TEXT = (
    "This repository was made by agentfleet's examples/quickstart/make_sample_repo.py.\n"
    "`make_sample_repo.py --force` may delete and remake this folder.\n"
)
# The demo's own identity, set in this repository only: a fresh machine may have none.
GIT_CONFIG = {
    "user.name": "agentfleet demo",
    "user.email": "demo@agentfleet.invalid",
    "commit.gpgsign": "false",
}


class RefusedError(Exception):
    """DEST cannot be used; the message says why and what to do."""


def prepare(dest: Path, force: bool) -> None:
    """Leave DEST missing or empty, deleting it only if it is a demo repo made by this script."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise RefusedError(f"{dest} exists and is not a folder")
    if not dest.exists() or not any(dest.iterdir()):
        return
    if not (dest / MARKER).is_file():
        raise RefusedError(
            f"{dest} is not empty and was not made by this script (no {MARKER} file); "
            "choose a new or empty folder"
        )
    if not force:
        raise RefusedError(f"{dest} already holds a demo repository; pass --force to remake it")
    shutil.rmtree(dest)


def git(dest: Path, *args: str) -> None:
    """Run git in DEST; output shows only if it fails."""
    subprocess.run(["git", *args], cwd=dest, check=True, capture_output=True, text=True)


def make(dest: Path) -> None:
    """Copy the sample files and the agent into DEST, then commit them on main."""
    ignore = shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.pyc")
    shutil.copytree(SAMPLE, dest, ignore=ignore, dirs_exist_ok=True)
    (dest / "tools").mkdir(exist_ok=True)
    shutil.copy2(AGENT, dest / "tools" / "scripted_agent.py")
    (dest / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
    git(dest, "init", "-q")
    git(dest, "symbolic-ref", "HEAD", "refs/heads/main")  # `init -b` needs git >= 2.28
    for key, value in GIT_CONFIG.items():
        git(dest, "config", key, value)
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "textkit: the agentfleet quickstart's sample package")


def main(argv: list[str] | None = None) -> int:
    """Exit 0 with a ready repository, 2 when DEST is refused, 1 when git fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="folder to create (missing or empty)")
    parser.add_argument(
        "--force", action="store_true", help=f"replace a demo repo made before (has {MARKER})"
    )
    args = parser.parse_args(argv)
    dest: Path = args.dest.absolute()
    if shutil.which("git") is None:
        print("error: git is not on PATH; install git first", file=sys.stderr)
        return 1
    try:
        prepare(dest, args.force)
        make(dest)
    except RefusedError as refused:
        print(f"error: {refused}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as exc:
        print(f"error: {' '.join(exc.cmd)} failed:\n{exc.stderr}", file=sys.stderr)
        return 1
    print(f"made {dest}: the textkit package, committed on branch main")
    manifests = os.path.relpath(HERE)
    manifests = HERE.as_posix() if manifests.startswith("..") else manifests
    print(f"next: agentfleet run -f {manifests} --repo {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
