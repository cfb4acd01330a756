"""`agentfleet runner prepare --spec RUN.json`: a run's worktree, made ready on a shared volume.

In a Pod, an init container runs it on the batch's workspace volume before the runner: one
shared clone per volume (`repo/`, bare), one worktree per task on its branch. Several Pods of a
batch prepare at once, so everything that touches the shared clone happens under a file lock.
A retried Pod finds its worktree and reuses it: stages of a task share it.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import subprocess
import sys
from pathlib import Path

from .spec import RunSpec

REPOSITORY_URL_ENV = "AGENTFLEET_REPOSITORY_URL"
BASE_BRANCH_ENV = "AGENTFLEET_BASE_BRANCH"
GIT_USERNAME_ENV = "AGENTFLEET_GIT_USERNAME"
GIT_TOKEN_ENV = "AGENTFLEET_GIT_TOKEN"
CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || return 0; '
    f'echo "username=${{{GIT_USERNAME_ENV}:-x-access-token}}"; '
    f'echo "password=${{{GIT_TOKEN_ENV}}}"; }}; f'
)
"""A git credential helper that answers from the environment (the project's Secret).

The token is read by the helper's shell when git asks, so it never appears in an argv, a
config file or a URL. GitHub, GitLab and Gitea all accept a token as the password."""
REPOSITORY_DIR = "repo"
LOCK_FILE = ".prepare.lock"


class PrepareError(RuntimeError):
    """The worktree cannot be made ready; the message says why, for the Pod's status."""


def _git(*args: str | Path, cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_TERMINAL_PROMPT"] = "0"  # an init container has no one to answer a prompt
    auth = ["-c", f"credential.helper={CREDENTIAL_HELPER}"] if env.get(GIT_TOKEN_ENV) else []
    done = subprocess.run(
        ["git", *auth, *(str(a) for a in args)], cwd=cwd, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        command = " ".join(str(a) for a in args[:2])
        raise PrepareError(f"git {command} failed: {done.stderr.strip() or done.returncode}")
    return done.stdout.strip()


def _has_branch(repo: Path, branch: str) -> bool:
    done = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
        capture_output=True,
    )
    return done.returncode == 0


def prepare(spec: RunSpec, *, workspace: Path, url: str, base: str) -> Path:
    """Make `spec.worktree` a worktree on `spec.branch` (from `base` when new); return it."""
    Path(spec.context_dir).mkdir(parents=True, exist_ok=True)
    worktree = Path(spec.worktree)
    if spec.branch is None and not url:  # a refinement with nothing to read
        worktree.mkdir(parents=True, exist_ok=True)
        return worktree
    repo = workspace / REPOSITORY_DIR
    workspace.mkdir(parents=True, exist_ok=True)
    with (workspace / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (repo / "HEAD").exists():
            _git("clone", "--bare", "--quiet", "--", url, repo)
        if spec.branch is None:  # a refinement reads the base branch, detached: no branch
            if not (worktree / ".git").exists():
                _git(
                    "-C",
                    repo,
                    "fetch",
                    "--quiet",
                    "origin",
                    f"+refs/heads/{base}:refs/heads/{base}",
                )
                _git("-C", repo, "worktree", "prune")
                worktree.parent.mkdir(parents=True, exist_ok=True)
                _git("-C", repo, "worktree", "add", "--quiet", "--detach", worktree, base)
            return worktree
        if (worktree / ".git").exists():
            current = _git("-C", worktree, "symbolic-ref", "--quiet", "--short", "HEAD")
            if current != spec.branch:
                raise PrepareError(
                    f"{worktree} is a worktree on {current!r}, not on {spec.branch!r}"
                )
            return worktree
        _git("-C", repo, "fetch", "--quiet", "origin", f"+refs/heads/{base}:refs/heads/{base}")
        _git("-C", repo, "worktree", "prune")
        worktree.parent.mkdir(parents=True, exist_ok=True)
        if _has_branch(repo, spec.branch):
            _git("-C", repo, "worktree", "add", "--quiet", worktree, spec.branch)
        else:
            _git("-C", repo, "worktree", "add", "--quiet", "-b", spec.branch, worktree, base)
    return worktree


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="agentfleet runner prepare",
        description="Make a run's worktree ready on the workspace volume (a Pod's init step).",
    )
    parser.add_argument("--spec", required=True, help="the RunSpec JSON")
    args = parser.parse_args(argv)
    url = os.environ.get(REPOSITORY_URL_ENV, "")
    base = os.environ.get(BASE_BRANCH_ENV, "main")
    try:
        spec = RunSpec.model_validate_json(Path(args.spec).read_text(encoding="utf-8"))
        if spec.branch is not None and not url:
            raise PrepareError(f"{REPOSITORY_URL_ENV} is not set: no repository to clone")
        path = prepare(spec, workspace=Path.cwd(), url=url, base=base)
    except (OSError, ValueError, PrepareError) as exc:
        print(f"agentfleet runner prepare: {exc}", file=sys.stderr)
        return 1
    print(f"worktree ready: {path}")
    return 0
