"""Commit what a run changed on the task branch, with `git` as a subprocess (argv, no shell).

No GitPython here: the runner starts in every run, and a few `git` calls cost less than the
import. Nothing depends on the user's git config: identity comes from the environment, hooks
and signing are off.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..models.run import DiffStat

GIT_TIMEOUT_SECONDS = 60
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
# Every git call: no hooks (--no-verify skips only some), no signing, no pager, no colour.
GIT_OPTIONS = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "color.ui=false",
    "--no-pager",
)

# Set when the runner is started from a git hook; they would point git at another repository.
REPOSITORY_VARIABLES = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_COMMON_DIR",
        "GIT_PREFIX",
    }
)


class CommitError(RuntimeError):
    """The run's work could not be committed; the run fails as CommitFailed."""


@dataclass(frozen=True)
class CommitOutcome:
    sha: str
    diff_stat: DiffStat
    committed: bool


@dataclass(frozen=True)
class Identity:
    name: str
    email: str


def git(
    worktree: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> str:
    """Run one git command in the worktree; its stdout, or CommitError with its stderr."""
    inherited = {k: v for k, v in os.environ.items() if k not in REPOSITORY_VARIABLES}
    full_env = {**inherited, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", **(env or {})}
    try:
        proc = subprocess.run(
            ["git", *GIT_OPTIONS, *args],
            cwd=worktree,
            input=stdin,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=full_env,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CommitError(f"git {args[0]}: {exc}") from None
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()[-3:] or [f"exit {proc.returncode}"]
        raise CommitError(f"git {args[0]}: " + " / ".join(detail))
    return proc.stdout


def head_sha(worktree: Path) -> str | None:
    """The commit HEAD points at, or None in a repository without commits."""
    try:
        return git(worktree, "rev-parse", "--verify", "--quiet", "HEAD^{commit}").strip() or None
    except CommitError:
        return None


def check_branch(worktree: Path, branch: str) -> None:
    """Refuse to commit anywhere but the task branch (an agent may have switched or detached)."""
    try:
        current = git(worktree, "symbolic-ref", "--quiet", "HEAD").strip()
    except CommitError:
        current = ""
    expected = branch if branch.startswith("refs/") else f"refs/heads/{branch}"
    if current != expected:
        shown = current.removeprefix("refs/heads/") or "a detached HEAD"
        raise CommitError(f"the worktree is on {shown}, not on the task branch {branch}")


def commit_message(subject: str, trailers: dict[str, str]) -> str:
    """Subject on one line (a title is data: newlines in it must not start a body), trailers."""
    one_line = " ".join(subject.split()) or "agentfleet run"
    lines = [f"{key}: {' '.join(value.split())}" for key, value in trailers.items() if value]
    return one_line + "\n\n" + "\n".join(lines) + "\n"


def diff_stat(worktree: Path, base: str | None, head: str) -> DiffStat:
    """Files, insertions and deletions between `base` and `head` (binary files count as files)."""
    raw = git(worktree, "diff", "--numstat", "-z", "-M", base or EMPTY_TREE, head)
    fields = raw.split("\0")
    files = insertions = deletions = 0
    index = 0
    while index < len(fields):
        record = fields[index]
        index += 1
        if not record:
            continue
        added, deleted, path = record.split("\t", 2)
        if not path:
            index += 2  # a rename: the old and new paths follow as their own fields
        files += 1
        insertions += int(added) if added.isdigit() else 0
        deletions += int(deleted) if deleted.isdigit() else 0
    return DiffStat(files_changed=files, insertions=insertions, deletions=deletions)


def commit_changes(
    worktree: Path,
    *,
    subject: str,
    trailers: dict[str, str],
    author: Identity,
    branch: str | None,
    base: str | None,
) -> CommitOutcome:
    """Stage everything (.gitignore respected) and commit it if anything changed.

    `base` is HEAD before the agent ran, so the diff stat covers the run's whole work even when
    the agent committed some of it itself. Without changes the result is the current HEAD.
    """
    if branch:
        check_branch(worktree, branch)
    git(worktree, "add", "-A")
    staged = git(worktree, "diff", "--cached", "--name-only", "-z")
    committed = bool(staged.strip("\0"))
    if committed:
        identity = {
            "GIT_AUTHOR_NAME": author.name,
            "GIT_AUTHOR_EMAIL": author.email,
            "GIT_COMMITTER_NAME": author.name,
            "GIT_COMMITTER_EMAIL": author.email,
        }
        git(
            worktree,
            "commit",
            "--no-verify",
            "--quiet",
            "--cleanup=whitespace",
            "--file=-",
            stdin=commit_message(subject, trailers),
            env=identity,
        )
    sha = head_sha(worktree)
    if sha is None:
        raise CommitError("the worktree has no commit to report")
    stat = diff_stat(worktree, base, sha) if sha != base else DiffStat()
    return CommitOutcome(sha=sha, diff_stat=stat, committed=committed)
