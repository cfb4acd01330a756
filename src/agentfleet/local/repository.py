"""The user's repository as the local engine sees it: where it is, and what it has."""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

import git


class RepositoryError(ValueError):
    """The path given as the repository cannot be used; the message says why."""


def find_repository(path: Path) -> Path:
    """The main working tree of the repository containing `path`.

    From inside a linked worktree (an agent calling `agentfleet` from its task) this is still
    the user's repository, so every command finds the same store.
    """
    if not path.exists():
        raise RepositoryError(f"{path}: no such folder")
    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise RepositoryError(
            f"{path}: not a git repository (run `git init` there, or pass --repo PATH)"
        ) from exc
    if repo.bare:
        raise RepositoryError(f"{path}: a bare repository has no working tree for worktrees")
    common = Path(repo.common_dir).resolve()
    return common.parent if common.name == ".git" else Path(repo.working_tree_dir or path)


def has_branch(repo: Path, branch: str) -> bool:
    try:
        git.Repo(repo).git.rev_parse("--verify", "--quiet", f"refs/heads/{branch}^{{commit}}")
    except git.GitCommandError:
        return False
    return True


def export_tree(repo: Path, ref: str, dest: Path) -> None:
    """The files of `ref` copied into `dest`, without git: a refinement agent reads the code
    there, and nothing it does can reach the user's checkout, index or branches.

    `git archive` and tarfile's "data" filter (no links out, no devices, no absolute paths).
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile() as archive:
        git.Repo(repo).archive(archive, treeish=f"refs/heads/{ref}", format="tar")
        archive.seek(0)
        with tarfile.open(fileobj=archive, mode="r:") as tar:
            tar.extractall(dest, filter="data")
