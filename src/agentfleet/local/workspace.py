"""Which repository and which store a command works on, from `--repo` and `--state-dir`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .repository import find_repository
from .store import DB_NAME, Store

STATE_DIR_NAME = ".agentfleet"


@dataclass(frozen=True)
class Workspace:
    repo: Path
    state_dir: Path

    @property
    def has_store(self) -> bool:
        return (self.state_dir / DB_NAME).exists()

    def open_store(self) -> Store:
        """The store, made on first use; a state folder inside the repository is git-excluded."""
        if not self.has_store:
            exclude_state_dir(self.repo, self.state_dir)
        return Store(self.state_dir)


def exclude_state_dir(repo: Path, state_dir: Path) -> None:
    """Keep the user's `git status` clean of agentfleet's files."""
    from .worktrees import ensure_excluded

    if state_dir.is_relative_to(repo.resolve()):
        ensure_excluded(repo, f"/{state_dir.relative_to(repo.resolve())}/")


def resolve_workspace(repo: Path | None, state_dir: Path | None) -> Workspace:
    """The repository holding `repo` (default: the current folder) and its state folder.

    Raises RepositoryError when the path is not in a git repository.
    """
    root = find_repository((repo or Path.cwd()).resolve())
    return Workspace(root, (state_dir or root / STATE_DIR_NAME).resolve())
